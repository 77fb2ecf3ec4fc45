"""Block Kit for /backup: the board's contents and a backup list, within Slack's limits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.blocks.backup import backup_list, status_board, status_line
from bot.replies.backup import ListReply, StatusReply
from tests.bot.blocks.slack_limits import assert_within_limits, texts
from workers.core.catalog import FACT_RECOVERABLE_UNTIL, component_status
from workers.core.config import Settings
from workers.core.manifest import (
    BackupSummary,
    CatalogIndex,
    VerificationRecord,
    VerificationState,
)

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
