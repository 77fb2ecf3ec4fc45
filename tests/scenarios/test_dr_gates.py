"""A runbook's approval gate asks for the restore its step needs, one a worker carries out as
approved: ``postgres-restore`` restores a base backup into a new instance, never a dump.

The run is driven in this process (no worker): Redis, a local store holding a dump, a base
backup and a newer dump, the shipped runbook, the gate's real restore request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.velero import platform
from tests.storage.backups import Clock, chunks, data
from workers.context import Context
from workers.core.config import Settings
from workers.core.errors import UsageError
from workers.core.manifest import Manifest
from workers.core.restore_plan import RestorePlan, job_params, lost_in_job, plan_from_params
from workers.core.runbook_run import Awaiting, StepStatus
from workers.restore.planning import validate_plan
from workers.restore.requests import store_of
from workers.runbooks import durability as dr
from workers.runbooks import flow as runbook_flow


def commit(ctx: Context, clock: Clock, kind: str) -> Manifest:
    """A small committed backup of ``kind``, one minute after the last."""
    clock.tick(minutes=1)
    with ctx.repo.begin("postgres", kind) as writer:
        writer.write("data", chunks(data(2000)))
        clock.tick(seconds=20)
        return writer.commit(source={"databases": ["app"]}, tool_versions={"pg": "15"})


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """The cluster whose consumers the runbook scales (the Velero engine's API server)."""
    fake = platform(FakeKubernetes().start())
    yield fake
    fake.stop()


@pytest.fixture
def ctx(
    make_settings: Callable[..., Settings], redis_url: str, tmp_path: Path, kube: FakeKubernetes
) -> Context:
    settings = make_settings(
        **{
            "redis.url": redis_url,
            "approval_key": "gate-approval-key-0123456789",
            "components.kubernetes.kubeconfig": str(kube.kubeconfig(tmp_path / "kubeconfig")),
        }
    )
    return Context(settings, clock=Clock())


def test_the_restore_step_asks_to_restore_a_base_backup_into_a_new_instance(
    ctx: Context, kube: FakeKubernetes
) -> None:
    clock = ctx.clock
    assert isinstance(clock, Clock)
    commit(ctx, clock, "postgres-logical")
    base = commit(ctx, clock, "postgres-base")
    newest_dump = commit(ctx, clock, "postgres-logical")  # `latest` of any kind is this
    runner = dr.LocalRunner()
    run = runbook_flow.start(
        ctx,
        "postgres-restore",
        {"data_dir": "/srv/postgres-new", "port": "5499"},
        started_by="UOPS",
        submit=runner,
    )
    # Scale-down is a job now: it records the consumers' replicas in the run and zeroes them.
    drained = runner.drain(ctx, run.run_id)
    down = drained.steps["scale-down"]
    assert down.status == StepStatus.DONE, down.error
    assert down.outputs["replicas"]["kosmos-agents/deployments/planner"] == 3
    planner = kube.get("apis/apps/v1", "kosmos-agents", "deployments", "planner")
    assert planner is not None and planner["spec"]["replicas"] == 0
    state = runbook_flow.runs(ctx).load(run.run_id).steps["restore"]
    assert state.status == StepStatus.RUNNING, state.error
    assert state.awaiting == Awaiting.APPROVAL
    request = store_of(ctx).get(str(state.approval_id))
    plan = request.plan
    assert plan.base and plan.backup_id == base.id != newest_dump.id
    assert (plan.target, plan.port, plan.point) == ("/srv/postgres-new", 5499, None)
    # The worker rebuilds the plan from the job's parameters: it is exactly what was approved.
    assert lost_in_job(plan) == []
    assert plan_from_params("postgres", job_params(plan)).digest() == plan.digest()


def test_a_plan_whose_job_would_lose_a_field_is_refused_before_anyone_approves(
    ctx: Context,
) -> None:
    clock = ctx.clock
    assert isinstance(clock, Clock)
    dump = commit(ctx, clock, "postgres-logical")
    plan = RestorePlan(component="postgres", backup_id=dump.id, target="app_new", port=5433)
    with pytest.raises(UsageError) as caught:
        validate_plan(ctx, plan)
    assert caught.value.message == (f"a restore of {dump.id} (postgres-logical) cannot use: port")
