"""The shipped runbooks' secrets steps run this engine's operations: recovery and the drill."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.engines.infisical.world import PROJECT
from tests.fakes.infisical import FakeInfisical
from workers.context import Context
from workers.core.ports import no_progress
from workers.core.run_start import new_run
from workers.core.runbook import StepMode
from workers.engines.infisical import export
from workers.runbooks import operations as runbook_ops
from workers.runbooks.call import Call
from workers.runbooks.files import load_runbook, runbook_dir


def step_call(ctx: Context, runbook: str, step: str, params: dict[str, Any]) -> Call:
    """The Call a worker makes for ``step`` of a fresh run of the shipped ``runbook``."""
    checked = load_runbook(
        runbook_dir() / f"{runbook}.yaml", available=lambda op: runbook_ops.available(ctx, op)
    )
    assert checked.modes.get(step, StepMode.AUTOMATED) == StepMode.AUTOMATED
    run = new_run(
        checked.runbook,
        run_id="run-1",
        params={},
        started_by="U-carol",
        now=datetime.now(UTC),
        rto=timedelta(hours=4),
        rpo=timedelta(hours=1),
        modes=checked.modes,
        safe={},
    )
    [found] = [s for s in checked.runbook.steps if s.id == step]
    return Call(ctx, run, step, str(found.operation), params, no_progress)


def test_full_recovery_restores_secrets_as_a_job(ctx: Context, infisical: FakeInfisical) -> None:
    export.backup(ctx, "secrets")
    infisical.put_secret(PROJECT, "prod", "/db", "PG_PASSWORD", "overwritten")
    call = step_call(ctx, "full-recovery", "restore-secrets", {"backup": "latest", "rotate": "no"})
    outputs = runbook_ops.execute(call, call.operation)
    assert outputs["imported"][f"{PROJECT}/prod"] == {"create": 0, "update": 1, "unchanged": 2}
    assert infisical.value(PROJECT, "prod", "/db", "PG_PASSWORD") == "pg-Zr2-prod"


def test_the_drill_imports_into_the_scratch_environment(
    build_context: Callable[..., Context], infisical: FakeInfisical
) -> None:
    def scratch(config: dict[str, Any]) -> None:
        config["components"]["secrets"]["drill_environment"] = "dr-scratch"

    ctx = build_context(scratch)
    export.backup(ctx, "secrets")
    call = step_call(ctx, "dr-test", "restore-secrets", {"backup": "latest", "scratch": True})
    outputs = runbook_ops.execute(call, call.operation)
    assert outputs["target"] == f"{PROJECT}/dr-scratch" and outputs["secrets"] == 3
    assert infisical.value(PROJECT, "dr-scratch", "/", "API_KEY") == "api-Vq7-prod"


def test_a_disabled_secrets_component_leaves_the_step_manual(
    build_context: Callable[..., Context],
) -> None:
    def disabled(config: dict[str, Any]) -> None:
        config["components"]["secrets"]["enabled"] = False

    assert not runbook_ops.available(build_context(disabled), "infisical.restore")
