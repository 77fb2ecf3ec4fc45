"""The monitor's words: each breach's message, hint and command, and the decisions it makes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from workers.core.catalog import FACT_RECOVERABLE_UNTIL, component_status
from workers.core.config import Settings
from workers.core.errors import Suggestion
from workers.core.manifest import BackupSummary, CatalogIndex
from workers.core.rpo import AlertState, Breach, breach, evaluate

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def index_with(finished_ago: timedelta | None, **facts: object) -> CatalogIndex:
    index = CatalogIndex(component="postgres", facts=dict(facts))
    if finished_ago is not None:
        finished = NOW - finished_ago
        index.upsert(
            BackupSummary(
                id="postgres-20261124T0900Z-ab12",
                component="postgres",
                kind="postgres-logical",
                started_at=finished - timedelta(minutes=1),
                finished_at=finished,
                size=10,
                objects=1,
            )
        )
    return index


def found(settings: Settings, index: CatalogIndex, failures: int = 0) -> Breach | None:
    return breach(component_status(settings, "postgres", index, NOW), failures, NOW)


def test_each_breach_says_what_and_what_to_run(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    lag = (NOW - timedelta(hours=2)).isoformat()
    assert [
        found(settings, index_with(None)),
        found(settings, index_with(timedelta(minutes=5), **{FACT_RECOVERABLE_UNTIL: lag})),
        found(settings, index_with(timedelta(hours=3))),
        found(settings, index_with(timedelta(minutes=5)), failures=3),
    ] == [
        Breach.seeing(
            "never",
            "postgres has never been backed up (RPO 1h)",
            "check the workers on its queue, or run:",
            *("backup", "postgres"),
        ),
        Breach(
            cause="wal",
            message="postgres: WAL archiving lags 2h behind (RPO 1h)",
            hint="check archive_command and the kosmos-postgres worker",
        ),
        Breach.seeing(
            "rpo",
            "postgres: last good backup is 3h old (RPO 1h)",
            "check the scheduler and workers:",
            "ops",
        ),
        Breach.seeing(
            "failures",
            "postgres: 3 backups failed in a row",
            "see the failures in the operations list; retry:",
            *("backup", "postgres"),
        ),
    ]
    never = found(settings, index_with(None))
    assert never is not None and never.suggestion == Suggestion(
        "check the workers on its queue, or run:", ("backup", "postgres")
    )
    assert never.hint == "check the workers on its queue, or run: kosmos-backup backup postgres"


def test_a_wal_lag_of_exactly_the_rpo_is_no_breach(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    archived = (NOW - settings.rpo_for("postgres")).isoformat()
    assert (
        found(settings, index_with(timedelta(minutes=5), **{FACT_RECOVERABLE_UNTIL: archived}))
        is None
    )
    assert found(settings, index_with(timedelta(minutes=5)), failures=1) is None


def test_the_alert_and_the_recovery_carry_everything(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    stale = component_status(settings, "postgres", index_with(timedelta(hours=2)), NOW)
    decisions, states = evaluate({}, [stale], {}, NOW, lambda at: f"op-{at:%H%M}")
    [alert] = decisions
    reason = "postgres: last good backup is 2h old (RPO 1h)"
    opened = AlertState(active=True, op_id="op-1200", reason=reason, since=NOW)
    assert (alert.component, alert.type, alert.op_id, alert.cause) == (
        "postgres",
        "alert",
        "op-1200",
        "rpo",
    )
    assert (alert.message, alert.hint, alert.state) == (
        reason,
        "check the scheduler and workers: kosmos-backup ops",
        opened,
    )
    assert alert.suggestion == Suggestion("check the scheduler and workers:", ("ops",))
    assert states == {"postgres": opened}
    later = NOW + timedelta(minutes=90)
    fresh = component_status(settings, "postgres", index_with(timedelta(minutes=-80)), later)
    decisions, states = evaluate(states, [fresh], {}, later, lambda at: "op-new")
    [recovered] = decisions
    assert (recovered.type, recovered.op_id, recovered.state) == (
        "recovered",
        "op-1200",
        AlertState(),
    )
    assert recovered.message == "postgres: recovered after 1h 30m, last good backup 10m old"
    assert states == {"postgres": AlertState()}
