"""The RPO monitor policy: one alert per breach, one recovery, failures after the second."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from workers.core.catalog import FACT_RECOVERABLE_UNTIL, component_status
from workers.core.config import Settings
from workers.core.manifest import BackupSummary, CatalogIndex
from workers.core.rpo import AlertState, breach, evaluate, wal_archive_lag

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def ids() -> Callable[[datetime], str]:
    counter = itertools.count(1)
    return lambda now: f"op-alert-{next(counter)}"


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


def test_fresh_component_has_no_breach(make_settings: Callable[..., Settings]) -> None:
    status = component_status(make_settings(), "postgres", index_with(timedelta(minutes=10)), NOW)
    assert breach(status, 0, NOW) is None


def test_breach_alerts_once_then_recovers_once(make_settings: Callable[..., Settings]) -> None:
    config = make_settings()
    new_id = ids()
    stale = component_status(config, "postgres", index_with(timedelta(hours=2)), NOW)
    decisions, states = evaluate({}, [stale], {}, NOW, new_id)
    assert [(d.type, d.cause) for d in decisions] == [("alert", "rpo")]
    assert "2h old" in decisions[0].message and "RPO 1h" in decisions[0].message
    alert_id = decisions[0].op_id
    # Still breached a minute later: silent.
    later = NOW + timedelta(minutes=1)
    stale_later = component_status(config, "postgres", index_with(timedelta(hours=2)), later)
    decisions, states = evaluate(states, [stale_later], {}, later, new_id)
    assert decisions == []
    assert states["postgres"].active
    # A fresh backup: one recovery, carrying the alert's op id.
    fresh = component_status(config, "postgres", index_with(timedelta(minutes=1)), later)
    decisions, states = evaluate(states, [fresh], {}, later, new_id)
    assert [(d.type, d.op_id) for d in decisions] == [("recovered", alert_id)]
    assert "recovered after 1m" in decisions[0].message
    assert states["postgres"] == AlertState()
    decisions, _ = evaluate(states, [fresh], {}, later, new_id)
    assert decisions == []


def test_never_backed_up_alerts(make_settings: Callable[..., Settings]) -> None:
    status = component_status(make_settings(), "postgres", index_with(None), NOW)
    found = breach(status, 0, NOW)
    assert found is not None and found.cause == "never"


def test_second_consecutive_failure_alerts_within_rpo(
    make_settings: Callable[..., Settings],
) -> None:
    status = component_status(make_settings(), "postgres", index_with(timedelta(minutes=5)), NOW)
    assert evaluate({}, [status], {"postgres": 1}, NOW, ids())[0] == []
    decisions, states = evaluate({}, [status], {"postgres": 2}, NOW, ids())
    assert [(d.type, d.cause) for d in decisions] == [("alert", "failures")]
    assert "2 backups failed in a row" in decisions[0].message
    decisions, _ = evaluate(states, [status], {"postgres": 0}, NOW, ids())
    assert [d.type for d in decisions] == ["recovered"]


def test_wal_archive_lag_beyond_rpo_alerts(make_settings: Callable[..., Settings]) -> None:
    lagging = (NOW - timedelta(hours=2)).isoformat()
    index = index_with(timedelta(minutes=10), **{FACT_RECOVERABLE_UNTIL: lagging})
    status = component_status(make_settings(), "postgres", index, NOW)
    assert wal_archive_lag(status, NOW) == 7200
    found = breach(status, 0, NOW)
    assert found is not None and found.cause == "wal"
    assert "WAL archiving lags 2h" in found.message


def test_disabled_component_closes_its_alert(make_settings: Callable[..., Settings]) -> None:
    config = make_settings(**{"components.postgres.enabled": "false"})
    status = component_status(config, "postgres", index_with(None), NOW)
    open_alert = {"postgres": AlertState(active=True, op_id="op-a", since=NOW)}
    decisions, states = evaluate(open_alert, [status], {}, NOW, ids())
    assert [(d.type, d.op_id) for d in decisions] == [("recovered", "op-a")]
    assert "disabled" in decisions[0].message
    assert not states["postgres"].active


def test_a_component_whose_engine_is_not_built_is_never_in_breach(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    never = component_status(settings, "postgres", index_with(None), NOW, built=False)
    stale = component_status(settings, "postgres", index_with(timedelta(days=3)), NOW, built=False)
    for status in (never, stale):
        assert status.freshness == "not built yet" and status.next_due is None
        assert not status.rpo_breached and status.breached_by_seconds == 0
        assert breach(status, failures=5, now=NOW) is None
    # An alert left open from before the engine was known to be missing is closed, saying why.
    opened = {"postgres": AlertState(active=True, op_id="op-old", since=NOW - timedelta(hours=1))}
    decisions, states = evaluate(opened, [never], {}, NOW, ids())
    assert [d.type for d in decisions] == ["recovered"]
    assert decisions[0].message == "postgres: alert closed, its engine is not built yet"
    assert not states["postgres"].active


@pytest.mark.parametrize(("factor", "breached"), [(0.99, False), (1.01, True)])
def test_backup_age_breaches_just_past_the_rpo(
    make_settings: Callable[..., Settings], factor: float, breached: bool
) -> None:
    settings = make_settings()
    age = settings.rpo_for("postgres") * factor
    status = component_status(settings, "postgres", index_with(age), NOW)
    found = breach(status, 0, NOW)
    assert status.rpo_breached is breached
    assert (found.cause if found else None) == ("rpo" if breached else None)


@pytest.mark.parametrize(("factor", "breached"), [(0.99, False), (1.01, True)])
def test_wal_lag_breaches_just_past_the_rpo(
    make_settings: Callable[..., Settings], factor: float, breached: bool
) -> None:
    settings = make_settings()
    lag = settings.rpo_for("postgres") * factor
    archived = (NOW - lag).isoformat()
    index = index_with(timedelta(minutes=1), **{FACT_RECOVERABLE_UNTIL: archived})
    status = component_status(settings, "postgres", index, NOW)
    assert wal_archive_lag(status, NOW) == lag.total_seconds()
    found = breach(status, 0, NOW)
    assert (found.cause if found else None) == ("wal" if breached else None)
