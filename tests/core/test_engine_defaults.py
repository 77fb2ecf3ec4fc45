"""The defaults an engine inherits: one queue, one track, the plan as it is, no extra lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workers.core.catalog import ComponentStatus
from workers.core.config import EtcdComponent
from workers.core.engine import EngineDefaults
from workers.core.manifest import Manifest
from workers.core.operations import BackupParams, OperationKind, OperationRequest
from workers.core.restore_plan import RestorePlan

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
COMPONENT = EtcdComponent(
    kind="etcd", frequency=timedelta(hours=6), retention=timedelta(days=7), queue="kosmos-etcd"
)
PLAN = RestorePlan(component="etcd", backup_id="etcd-20261124T0200Z-7f3a", target="/var/new")


class Plain(EngineDefaults):
    """An engine that overrides nothing."""


def test_one_queue_for_everything_and_one_track_without_base_backups() -> None:
    engine = Plain()
    request = OperationRequest(
        op_id="op-1",
        kind=OperationKind.BACKUP,
        component="etcd",
        params=BackupParams(base=True),
        requested_at=NOW,
    )
    assert engine.base_backups is False
    assert engine.queues(COMPONENT) == ["kosmos-etcd"]
    assert engine.queue_for(COMPONENT, request) == "kosmos-etcd"
    assert engine.backup_tracks(COMPONENT) == [False]


def test_the_plan_passes_as_it_is_and_the_board_adds_no_line() -> None:
    engine = Plain()
    manifest = Manifest.model_construct()
    assert engine.check_plan(None, PLAN, manifest) is PLAN
    assert engine.recheck_plan(None, PLAN) is None
    assert engine.status_facts(ComponentStatus.model_construct(), NOW) == []
