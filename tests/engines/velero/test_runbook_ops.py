"""The engine's runbook operations on a real run of the shipped postgres-restore runbook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.velero import FakeVelero
from workers.context import Context
from workers.core.errors import EngineError, UsageError
from workers.core.ports import no_progress
from workers.core.run_start import new_run
from workers.core.runbook_run import RunState
from workers.engines.velero import backups, runbook_ops
from workers.runbooks.call import Call
from workers.runbooks.files import DEFAULT_DIR, load_runbook

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
APPS = "apis/apps/v1"


def run_of(name: str) -> RunState:
    checked = load_runbook(DEFAULT_DIR / f"{name}.yaml")
    return new_run(
        checked.runbook,
        run_id="dr-20261205-0300-abcd",
        params={},
        started_by="UOPS",
        now=NOW,
        rto=timedelta(hours=4),
        rpo=timedelta(hours=1),
        modes={},
        safe={},
    )


def call(ctx: Context, run: RunState, step: str, operation: str, **params: Any) -> Call:
    return Call(ctx, run, step, operation, params, no_progress)


def replicas(kube: FakeKubernetes, namespace: str, plural: str, name: str) -> int:
    found = kube.get(APPS, namespace, plural, name)
    assert found is not None
    return int(found["spec"]["replicas"])


def test_scale_steps_record_in_the_run_and_restore_exact_counts(
    ctx: Context, kube: FakeKubernetes
) -> None:
    run = run_of("postgres-restore")
    run.start("scale-down", NOW)
    down = runbook_ops.scale_down(
        call(ctx, run, "scale-down", "velero.scale-down", namespaces="kosmos-agents,kosmos-data")
    )
    assert down["replicas"]["kosmos-agents/deployments/planner"] == 3
    assert replicas(kube, "kosmos-agents", "deployments", "planner") == 0
    assert replicas(kube, "kosmos-data", "statefulsets", "minio") == 0
    run.succeed("scale-down", NOW, outputs=down)
    run.start("scale-up", NOW)
    kube.ready_delay = 0.2
    up = runbook_ops.scale_up(call(ctx, run, "scale-up", "velero.scale-up", health_budget="30s"))
    assert up["healthy"] and up["replicas"] == down["replicas"]
    assert replicas(kube, "kosmos-agents", "deployments", "planner") == 3
    assert replicas(kube, "kosmos-data", "statefulsets", "minio") == 2


def test_scale_up_without_a_record_is_refused(ctx: Context, kube: FakeKubernetes) -> None:
    run = run_of("postgres-restore")
    with pytest.raises(UsageError) as caught:
        runbook_ops.scale_up(call(ctx, run, "scale-up", "velero.scale-up"))
    assert "scale-down recorded no replica counts" in caught.value.message
    with pytest.raises(UsageError):
        runbook_ops.scale_down(call(ctx, run, "scale-down", "velero.scale-down"))
    with pytest.raises(UsageError):
        runbook_ops.scale_up(call(ctx, run, "scale-up", "velero.scale-up", health_budget="soon"))


def test_restore_step_waits_for_health_and_names_what_is_not_ready(
    ctx: Context, velero: FakeVelero
) -> None:
    backups.backup(ctx, "kubernetes")
    velero.kube.namespace_gone("kosmos-agents")
    velero.kube.never_ready.add("writer")
    run = run_of("full-recovery")
    with pytest.raises(EngineError) as caught:
        runbook_ops.restore(
            call(
                ctx, run, "restore-resources", "velero.restore", backup="latest", health_budget="1s"
            )
        )
    assert "kosmos-agents/writer 0/1 ready" in caught.value.message
    velero.kube.never_ready.clear()
    velero.kube.scaled((APPS, "kosmos-agents", "deployments", "writer"), 1)
    done = runbook_ops.restore(
        call(ctx, run, "restore-resources", "velero.restore", backup="latest", health_budget="5s")
    )
    assert done["phase"] == "Completed" and "kosmos-agents/deployments/writer" in done["healthy"]


def test_the_drill_restores_into_mapped_scratch_namespaces(
    ctx: Context, velero: FakeVelero
) -> None:
    made = backups.backup(ctx, "kubernetes")
    run = run_of("dr-test")
    result = runbook_ops.restore(
        call(ctx, run, "restore-resources", "velero.restore", backup="latest", scratch=True)
    )
    assert result["backup_id"] == made.id and result["restored"] == 6
    assert result["scratch"] == [
        "kosmos-agents-kbverify",
        "kosmos-data-kbverify",
        "kosmos-system-kbverify",
    ]
    for scratch in result["scratch"]:  # gone again
        assert not list(velero.kube.listed(APPS, scratch, "deployments"))


def test_scale_up_after_a_scale_down_that_failed_half_way(
    ctx: Context, kube: FakeKubernetes
) -> None:
    run = run_of("postgres-restore")
    kube.forbidden.add(("patch", "statefulsets/scale"))  # the deployments go, then a 403
    run.start("scale-down", NOW)
    with pytest.raises(EngineError):
        runbook_ops.scale_down(
            call(
                ctx, run, "scale-down", "velero.scale-down", namespaces="kosmos-agents,kosmos-data"
            )
        )
    assert replicas(kube, "kosmos-agents", "deployments", "planner") == 0
    run.fail("scale-down", NOW, "forbidden")
    kube.forbidden.clear()
    up = runbook_ops.scale_up(
        call(ctx, run, "scale-up", "velero.scale-up", namespaces="kosmos-agents,kosmos-data")
    )
    assert up["replicas"]["kosmos-agents/deployments/planner"] == 3
    assert replicas(kube, "kosmos-agents", "deployments", "planner") == 3
    assert replicas(kube, "kosmos-data", "statefulsets", "minio") == 2  # never scaled down
