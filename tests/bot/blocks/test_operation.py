"""Block Kit for an operation: its message as its stage moves, thread details, alerts, errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.blocks.operation import alert, detail, error_message, operation
from bot.replies.progress import OperationView, Stage
from tests.bot.blocks.slack_limits import assert_within_limits, texts
from workers.core.catalog import component_status
from workers.core.config import Settings
from workers.core.errors import PermissionDenied, UsageError
from workers.core.events import ChatContext, Event, EventType
from workers.core.manifest import CatalogIndex
from workers.core.rpo import breach

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_errors_are_clipped_and_usage_is_shown_as_code() -> None:
    usage = error_message(UsageError("unknown component 'x'", hint="usage: /backup run <c>"))
    assert texts(usage) == [":warning: unknown component 'x'\n```usage: /backup run &lt;c&gt;```"]
    refusal = error_message(PermissionDenied("no", hint="h" * 10_000))
    assert_within_limits([refusal])
    assert texts(refusal)[0].startswith(":no_entry: no\n_hhh")


def view(**changes: Any) -> OperationView:
    base = OperationView(
        op_id="op-1",
        operation="backup",
        component="postgres",
        chat=ChatContext(source="slack", channel="C1", user="UOPS"),
    )
    return base.model_copy(update=changes)


def test_the_operation_message_follows_its_stage() -> None:
    assert texts(operation(view())) == [
        ":hourglass_flowing_sand: *Backup of postgres* — queued",
        "`op-1` · requested by <@UOPS>",
    ]
    running = operation(
        view(stage=Stage.RUNNING, phase="dump app", done_bytes=5 << 20, total_bytes=10 << 20)
    )
    assert texts(running)[0] == (
        ":arrows_counterclockwise: *Backup of postgres* — running: dump app · "
        "50% ▓▓▓▓▓░░░░░ · 5.0 MiB of 10.0 MiB"
    )
    done = operation(
        view(
            stage=Stage.DONE,
            summary={"size": 3 << 20, "duration_seconds": 75, "backup_id": "postgres-x"},
        )
    )
    assert texts(done)[0] == (
        ":white_check_mark: *Backup of postgres* — done · 3.0 MiB · in 1m · backup postgres-x"
    )
    failed = operation(view(stage=Stage.FAILED, message="pg_dump failed: <!channel>", hint="check"))
    assert texts(failed)[:2] == [
        ":x: *Backup of postgres* — failed: pg_dump failed: &lt;!channel&gt;",
        "_check_",
    ]


def test_thread_details_and_alerts() -> None:
    at = NOW
    note = Event(op_id="op-1", type=EventType.NOTE, at=at, operation="backup", note="dumped app")
    assert texts(detail(note)) == ["dumped app"]
    end = Event(
        op_id="op-1",
        type=EventType.FINISHED,
        at=at,
        operation="backup",
        summary={"backup_id": "etcd-x", "size": 5120, "duration_seconds": 0.25, "objects": 2},
    )
    assert texts(detail(end)) == [
        "*backup id*: `etcd-x`\n*size*: 5.0 KiB (5120 bytes)\n"
        "*duration seconds*: 0.25s\n*objects*: 2"
    ]
    raised = Event(
        op_id="op-2",
        type=EventType.ALERT,
        at=at,
        operation="rpo-check",
        component="etcd",
        message="last good backup 7h ago",
        hint="run /backup run etcd",
    )
    assert texts(alert(raised)) == [
        ":rotating_light: *RPO alert — etcd*: last good backup 7h ago\n_run /backup run etcd_"
    ]


def test_an_rpo_alert_names_the_chat_command_in_the_channel(
    make_settings: Callable[..., Settings],
) -> None:
    """The monitor's hint is in the CLI's words for logs; the channel reads the chat's."""
    empty = CatalogIndex(component="postgres")
    never = component_status(make_settings(), "postgres", empty, NOW)
    found = breach(never, failures=0, now=NOW)
    assert found is not None and found.hint.endswith("run: kosmos-backup backup postgres")
    event = Event(
        op_id="op-3",
        type=EventType.ALERT,
        at=NOW,
        operation="rpo-check",
        component="postgres",
        message=found.message,
        hint=found.hint,
        suggestion=found.suggestion,
    )
    [line] = texts(alert(event))
    assert line.endswith("_check the workers on its queue, or run: /backup run postgres_")
    assert "kosmos-backup" not in line


def test_a_restore_message_ends_with_what_it_compared_against_the_rto() -> None:
    summary = {
        "backup_id": "postgres-x",
        "duration_seconds": 184.0,
        "checksums_matched": True,
        "databases": [
            {
                "source_database": "app",
                "database": "app<2>",
                "tables": 4,
                "rows": 100_011,
                "checksums_matched": True,
            },
        ],
    }
    done = view(operation="restore", stage=Stage.DONE, summary=summary)
    assert texts(operation(done, 4 * 3600))[0] == (
        ":white_check_mark: *Restore of postgres* — done · 4 tables / 100,011 rows compared · "
        "checksums match · 3m of the 4h RTO (1.3%) · backup postgres-x"
    )
    end = Event(op_id="op-1", type=EventType.FINISHED, at=NOW, operation="restore", summary=summary)
    assert texts(detail(end)) == [
        "*backup id*: `postgres-x`\n*duration seconds*: 3m\n*checksums matched*: True\n"
        "app -&gt; app&lt;2&gt;: 4 tables, 100,011 rows, checksums match"
    ]
