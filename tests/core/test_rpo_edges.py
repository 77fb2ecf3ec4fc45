"""The monitor at its edges: thresholds, a WAL from the future, recoveries without a start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workers.core.catalog import FACT_RECOVERABLE_UNTIL, ComponentStatus, Freshness
from workers.core.manifest import BackupSummary
from workers.core.rpo import FAILURE_THRESHOLD, AlertState, Decision, breach, evaluate
from workers.core.rpo import wal_archive_lag as lag_of

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LAST = BackupSummary(
    id="etcd-20261124T1150Z-ab12",
    component="etcd",
    kind="etcd-snapshot",
    started_at=NOW - timedelta(minutes=11),
    finished_at=NOW - timedelta(minutes=10),
    size=10,
    objects=1,
)


def status(name: str = "etcd", **changes: object) -> ComponentStatus:
    fields: dict[str, object] = {
        "name": name,
        "kind": "etcd",
        "enabled": True,
        "freshness": next(iter(Freshness)),
        "last_backup": LAST,
        "age_seconds": 600.0,
        "recovery_point": LAST.finished_at,
        "rpo_seconds": 3600.0,
        "rpo_breached": False,
        "breached_by_seconds": 0.0,
        "frequency_seconds": 3600.0,
        "next_due": None,
        "retention_seconds": 86400.0,
        "retained": 1,
        "oldest": LAST.finished_at,
        "last_verification": None,
    }
    return ComponentStatus.model_validate(fields | changes)


def never_ids(now: datetime) -> str:
    raise AssertionError("no new operation id was needed")


def test_the_default_threshold_is_two_failures_in_a_row() -> None:
    assert FAILURE_THRESHOLD == 2
    assert breach(status(), 1, NOW) is None
    found = breach(status(), 2, NOW)
    assert found is not None and found.message == "etcd: 2 backups failed in a row"
    assert breach(status(), 2, NOW, threshold=3) is None
    assert breach(status(), 3, NOW, threshold=3) is not None


def test_evaluate_passes_its_threshold_on() -> None:
    decisions, states = evaluate({}, [status()], {"etcd": 2}, NOW, lambda at: "op-1", threshold=3)
    assert (decisions, states) == ([], {"etcd": AlertState()})
    decisions, _ = evaluate({}, [status()], {"etcd": 3}, NOW, lambda at: "op-1", threshold=3)
    assert [(d.cause, d.message) for d in decisions] == [
        ("failures", "etcd: 3 backups failed in a row")
    ]


def test_failures_of_another_component_do_not_count() -> None:
    decisions, states = evaluate({}, [status()], {"minio": 5}, NOW, never_ids)
    assert (decisions, states) == ([], {"etcd": AlertState()})


def test_a_wal_archived_in_the_future_lags_zero_and_none_recorded_is_no_lag() -> None:
    ahead = status(facts={FACT_RECOVERABLE_UNTIL: (NOW + timedelta(minutes=5)).isoformat()})
    assert lag_of(ahead, NOW) == 0.0
    behind = status(facts={FACT_RECOVERABLE_UNTIL: (NOW - timedelta(minutes=5)).isoformat()})
    assert lag_of(behind, NOW) == 300.0
    assert lag_of(status(), NOW) is None


def test_a_breached_rpo_without_an_age_is_no_rpo_breach() -> None:
    assert breach(status(rpo_breached=True, age_seconds=None), 0, NOW) is None


def test_a_disabled_component_is_never_in_breach() -> None:
    assert breach(status(enabled=False, last_backup=None), 5, NOW) is None


def test_the_never_breach_comes_first_and_names_the_rpo() -> None:
    found = breach(status(last_backup=None, rpo_breached=True, rpo_seconds=86400.0), 9, NOW)
    assert found is not None and found.cause == "never"
    assert found.message == "etcd has never been backed up (RPO 1d)"


def test_an_open_alert_without_its_start_or_id_recovers_with_a_new_id() -> None:
    opened = {"etcd": AlertState(active=True)}
    decisions, states = evaluate(opened, [status()], {}, NOW, lambda at: f"op-{at:%H%M}")
    assert decisions == [
        Decision(
            component="etcd",
            type="recovered",
            op_id="op-1200",
            message="etcd: recovered, last good backup 10m old",
            state=AlertState(),
        )
    ]
    assert states == {"etcd": AlertState()}


@pytest.mark.parametrize("age", [None, 0.0])
def test_a_recovery_without_an_age_says_only_how_long_the_alert_lasted(age: float | None) -> None:
    opened = {"etcd": AlertState(active=True, op_id="op-a", since=NOW - timedelta(minutes=3))}
    decisions, _ = evaluate(opened, [status(age_seconds=age)], {}, NOW, never_ids)
    assert [d.message for d in decisions] == ["etcd: recovered after 3m"]


def test_a_disabled_components_alert_closes_saying_so() -> None:
    opened = {"etcd": AlertState(active=True, op_id="op-a", since=NOW)}
    decisions, _ = evaluate(opened, [status(enabled=False)], {}, NOW, never_ids)
    assert [(d.op_id, d.message) for d in decisions] == [
        ("op-a", "etcd: alert closed, the component is disabled")
    ]


def test_each_component_is_decided_on_its_own() -> None:
    opened = {
        "minio": AlertState(active=True, op_id="op-m", since=NOW),
        "gone": AlertState(active=True, op_id="op-g", since=NOW),
    }
    statuses = [status("etcd", last_backup=None), status("minio"), status("velero")]
    decisions, states = evaluate(opened, statuses, {}, NOW, lambda at: "op-new")
    assert [(d.component, d.type, d.op_id) for d in decisions] == [
        ("etcd", "alert", "op-new"),
        ("minio", "recovered", "op-m"),
    ]
    assert states == {
        "etcd": AlertState(
            active=True, op_id="op-new", reason="etcd has never been backed up (RPO 1h)", since=NOW
        ),
        "minio": AlertState(),
        "velero": AlertState(),
    }


def test_a_component_with_no_failures_counted_has_none() -> None:
    decisions, _ = evaluate({}, [status()], {"minio": 5}, NOW, never_ids, threshold=1)
    assert decisions == []


def test_evaluate_measures_the_wal_lag_at_its_own_now() -> None:
    lagging = status(facts={FACT_RECOVERABLE_UNTIL: (NOW - timedelta(hours=2)).isoformat()})
    decisions, _ = evaluate({}, [lagging], {}, NOW, lambda at: f"op-{at:%H%M}")
    assert [(d.op_id, d.cause, d.message) for d in decisions] == [
        ("op-1200", "wal", "etcd: WAL archiving lags 2h behind (RPO 1h)")
    ]
