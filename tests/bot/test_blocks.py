"""Block Kit rendering: the board's contents, the operation message, and Slack's limits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.blocks import (
    MAX_BLOCKS,
    MAX_TEXT,
    alert,
    backup_list,
    detail,
    error_message,
    operation,
    status_board,
    status_line,
)
from bot.progress import OperationView, Stage
from bot.replies import ListReply, StatusReply
from workers.core.catalog import FACT_RECOVERABLE_UNTIL, component_status
from workers.core.config import Settings
from workers.core.errors import PermissionDenied, UsageError
from workers.core.events import ChatContext, Event, EventType
from workers.core.manifest import (
    BackupSummary,
    CatalogIndex,
    VerificationRecord,
    VerificationState,
)
from workers.core.rpo import breach

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def summary(component: str, ago: timedelta, size: int = 1 << 20, n: int = 0) -> BackupSummary:
    finished = NOW - ago
    return BackupSummary(
        id=f"{component}-{finished:%Y%m%dT%H%MZ}-{n:04x}",
        component=component,
        kind=f"{component}-test",
        started_at=finished - timedelta(minutes=1),
        finished_at=finished,
        size=size,
        objects=2,
    )


def texts(message: Any) -> list[str]:
    found = []
    for block in message.blocks:
        if "text" in block:
            found.append(block["text"]["text"])
        for element in block.get("elements", []):
            found.append(element["text"])
    return found


def assert_within_limits(messages: list[Any]) -> None:
    for message in messages:
        assert len(message.blocks) <= MAX_BLOCKS
        assert len(message.text) <= MAX_TEXT
        for text in texts(message):
            assert len(text) <= MAX_TEXT


def board(settings: Settings, indexes: dict[str, CatalogIndex]) -> StatusReply:
    rows = [
        component_status(settings, name, indexes.get(name, CatalogIndex(component=name)), NOW)
        for name in settings.components
    ]
    return StatusReply(settings.objectives, rows, NOW)


def test_status_board_shows_marks_age_size_due_verification_and_wal_lag(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(**{"components.secrets.enabled": "false"})
    verified = VerificationRecord(state=VerificationState.PASSED, at=NOW - timedelta(days=2))
    postgres = summary("postgres", timedelta(minutes=10)).model_copy(
        update={"verification": verified}
    )
    indexes = {
        "postgres": CatalogIndex(
            component="postgres",
            backups=[postgres],
            facts={FACT_RECOVERABLE_UNTIL: (NOW - timedelta(seconds=30)).isoformat()},
        ),
        "minio": CatalogIndex(component="minio", backups=[summary("minio", timedelta(hours=20))]),
        "etcd": CatalogIndex(component="etcd", backups=[summary("etcd", timedelta(hours=7))]),
    }
    messages = status_board(board(settings, indexes))
    assert len(messages) == 1
    header, *lines = texts(messages[0])
    assert header == "Backups · RPO 1h · RTO 4h"
    assert lines[0] == (
        "*postgres* (postgres) :large_green_circle: fresh\n"
        "last good 30s ago · 1.0 MiB · next in 49m · verified passed 2d ago · WAL lag 30s"
    )
    assert lines[1].startswith("*minio* (minio) :large_yellow_circle: aging\nlast good 20h ago")
    assert lines[2].startswith("*etcd* (etcd) :red_circle: RPO breached (by 1h)\n")
    assert "due now" in lines[2]
    assert lines[3] == (
        "*kubernetes* (velero) :white_circle: never backed up\n"
        "no good backup · due now · never verified"
    )
    assert lines[4].startswith("*secrets* (infisical) :heavy_minus_sign: disabled")
    assert "RPO breached for etcd, kubernetes" in messages[0].text


def test_a_board_of_many_components_is_split_into_messages_within_limits(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    one = settings.components["etcd"]
    many = settings.model_copy(update={"components": {f"etcd-{i}": one for i in range(120)}})
    messages = status_board(board(many, {}))
    assert len(messages) == 3
    assert_within_limits(messages)
    assert texts(messages[1])[0].endswith("(continued)")
    shown = [t for m in messages for t in texts(m) if t.startswith("*etcd-")]
    assert len(shown) == 120


def test_a_long_backup_list_packs_lines_into_sections_and_keeps_every_id() -> None:
    backups = [summary("postgres", timedelta(hours=i), n=i) for i in range(200)]
    messages = backup_list(ListReply("postgres", backups, 10_000, NOW))
    assert_within_limits(messages)
    joined = "\n".join(t for m in messages for t in texts(m))
    assert all(b.id in joined for b in backups)
    assert texts(messages[0])[0] == "postgres: 200 of 10000 backups"


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


def test_status_lines_for_an_engine_not_built_and_an_unreachable_source(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    empty = CatalogIndex(component="minio")
    not_built = component_status(settings, "minio", empty, NOW, built=False)
    assert status_line(not_built, NOW) == (
        "*minio* (minio) :construction: not built yet\nnot scheduled until its engine lands"
    )
    away = component_status(
        settings,
        "postgres",
        CatalogIndex(component="postgres"),
        NOW,
        unreachable="unreachable at host=db password=*** (connection refused); point it <here>",
    )
    line = status_line(away, NOW)
    assert line.endswith(
        "\n:x: unreachable at host=db password=*** (connection refused); point it &lt;here&gt;"
    )
    messages = status_board(StatusReply(settings.objectives, [away, not_built], NOW))
    assert "RPO breached for postgres" in messages[0].text  # minio is not in breach


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
