"""``/restore kubernetes <id|latest> [--namespaces a,b] -- reason``: parsed, planned, carried
to the job exactly as approved, and restored by the Velero engine."""

from __future__ import annotations

import subprocess

import pytest

from bot.grammar.restore import RestoreRequest, parse_restore
from tests.fakes.velero import FakeVelero
from workers import engine as components
from workers.context import Context
from workers.core.errors import UsageError
from workers.core.restore_plan import job_params, plan_from_params
from workers.engines.velero import backups
from workers.restore_plans import plan_from_options, resolve_plan, validate_plan

COMPONENTS = ["postgres", "minio", "etcd", "kubernetes", "secrets"]
VELERO = "apis/velero.io/v1"


def request(text: str) -> RestoreRequest:
    parsed = parse_restore(text, COMPONENTS)
    assert isinstance(parsed, RestoreRequest)
    return parsed


def test_namespaces_are_parsed_and_bad_ones_refused() -> None:
    asked = request("kubernetes latest --namespaces kosmos-agents,kosmos-data -- agents lost")
    assert asked.engine_options() == {"namespaces": "kosmos-agents,kosmos-data"}
    assert request("kubernetes latest -- all of it").engine_options() == {}
    with pytest.raises(UsageError) as caught:
        request("kubernetes latest --namespaces Kosmos_Agents -- no")
    assert "namespaces" in caught.value.message


def test_a_plan_for_some_namespaces_reaches_the_engine_as_approved(
    ctx: Context, velero: FakeVelero
) -> None:
    made = backups.backup(ctx, "kubernetes")
    asked = request("kubernetes latest --namespaces kosmos-agents -- the agents are gone")
    plan = resolve_plan(
        ctx, "kubernetes", asked.ref, target=asked.namespaces, options=asked.engine_options()
    )
    validate_plan(ctx, plan)
    assert plan.backup_id == made.id and plan.options == {"namespaces": "kosmos-agents"}
    params = job_params(plan)
    # The worker rebuilds the plan from the job: the digest the approval signed.
    assert plan_from_params("kubernetes", params).digest() == plan.digest()
    velero.kube.namespace_gone("kosmos-agents")
    result = components.restore(ctx, "kubernetes", params.backup, **params.restore_kwargs())
    assert result.namespaces == ("kosmos-agents",) and result.phase == "Completed"
    restore = velero.kube.get(VELERO, "velero", "restores", result.restore)
    assert restore is not None and restore["spec"]["includedNamespaces"] == ["kosmos-agents"]


def test_a_whole_restore_is_still_the_velero_engine_s(ctx: Context, velero: FakeVelero) -> None:
    backups.backup(ctx, "kubernetes")
    plan = resolve_plan(ctx, "kubernetes", "latest")
    assert plan.options == {"namespaces": "", "health_budget": ""}
    params = job_params(plan)
    assert plan_from_params("kubernetes", params).digest() == plan.digest()
    result = components.restore(ctx, "kubernetes", params.backup, **params.restore_kwargs())
    assert result.phase == "Completed" and result.namespaces == (
        "kosmos-agents",
        "kosmos-data",
        "kosmos-system",
    )


def test_the_cli_plans_the_same_restore_by_its_explicit_id(
    ctx: Context, velero: FakeVelero
) -> None:
    made = backups.backup(ctx, "kubernetes")
    plan = plan_from_options(ctx, "kubernetes", made.id, namespaces="kosmos-agents")
    chat = resolve_plan(
        ctx, "kubernetes", made.id, target="kosmos-agents", options={"namespaces": "kosmos-agents"}
    )
    assert plan.digest() == chat.digest()
    helped = subprocess.run(
        ["kosmos-backup", "restore-request", "--help"], capture_output=True, text=True, timeout=60
    )
    assert "--namespaces A,B" in helped.stdout
