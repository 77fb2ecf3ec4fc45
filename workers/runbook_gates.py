"""Approval gates of runbook steps, carried out by the two-person restore requests.

A job step marked ``approval: true`` does not run its restore itself: it opens a restore
request for exactly its resolved plan (``workers.restore_requests``), so the same rules
apply as to ``/restore``: a different approver, a fresh role check, expiry, a signed
approval bound to the plan, verified again by the worker's guard. Once approved, the
request's own restore job runs; :func:`follow_gates` (every scheduler tick, and on
``/dr status`` and ``/dr resume``) moves the step along with that job: done with its
results, failed with its message, or failed when the request was denied or expired.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from workers import runbook_flow, runbook_ops
from workers.context import Context
from workers.core.errors import KosmosError
from workers.core.runbook import JobStep
from workers.core.runbook_run import Awaiting, RunState, StepStatus
from workers.state.redis_state import RedisState

log = structlog.get_logger("kosmos.dr")
_CLOSED = ("denied", "expired", "refused")


def open_gate(ctx: Context, run: RunState, step_id: str) -> str | None:
    """Open the restore request a gated step waits for; record its id (or fail the step)."""
    from workers.restore_plans import resolve_plan
    from workers.restore_requests import open_restore_request

    step = run.runbook.step(step_id)
    assert isinstance(step, JobStep)
    try:
        params = run.resolved(step.params)
        base = runbook_ops.restores_base_backup(step.operation)
        plan = resolve_plan(ctx, **_plan_args(params), base=base)
        request = open_restore_request(
            ctx,
            plan,
            run.started_by,
            f"runbook {run.runbook.name}, run {run.run_id}, step {step_id}: {step.title}",
            runbook_flow.step_chat(run),
        )
    except KosmosError as exc:
        _fail(ctx, run.run_id, step_id, f"cannot ask for approval: {exc.message}", exc.hint)
        return None

    def record(state: RunState) -> None:
        state.steps[step_id].approval_id = request.id

    run, _ = runbook_flow.runs(ctx).update(run.run_id, record)
    runbook_flow.step_event(ctx, run, step_id, f"approval requested: {request.id}")
    return request.id


def _plan_args(params: dict[str, Any]) -> dict[str, Any]:
    point = params.get("target_time") or None
    port = params.get("port") or None
    target = params.get("target_database") or params.get("target_dsn") or params.get("data_dir")
    return {
        "component": str(params.get("component") or "postgres"),
        "ref": str(params.get("backup") or "latest"),
        "target": str(target) if target else None,
        "database": str(params["database"]) if params.get("database") else None,
        "point": datetime.fromisoformat(str(point)) if point else None,
        "port": int(port) if port else None,
    }


def follow_gates(ctx: Context, run_id: str) -> None:
    """Move every gated step of a run along with its restore request and job."""
    from workers.restore_requests import store_of

    run = runbook_flow.runs(ctx).load(run_id)
    for step_id, state in run.steps.items():
        if state.status != StepStatus.RUNNING or not (state.approval_id or "").startswith("rr-"):
            continue
        if state.awaiting == Awaiting.APPROVAL:
            request = store_of(ctx).find(str(state.approval_id))
            if request is None:
                continue
            if request.state.value in _CLOSED:
                why = request.note or (request.denial.reason if request.denial else "")
                _fail(ctx, run_id, step_id, f"approval {request.state.value}: {why}".strip(": "))
            elif request.op_id:
                _approved(ctx, run_id, step_id, request.op_id, request.approvers)
        elif state.op_id:
            _collect(ctx, run_id, step_id, state.op_id)


def _approved(ctx: Context, run_id: str, step_id: str, op_id: str, approvers: list[str]) -> None:
    def change(run: RunState) -> None:
        state = run.steps[step_id]
        state.awaiting = None
        state.op_id = op_id
        state.executing = True  # the request's own job runs it; a crash asks a person
        state.confirmed_by = ", ".join(approvers) or None

    run, _ = runbook_flow.runs(ctx).update(run_id, change)
    runbook_flow.step_event(ctx, run, step_id, "approved", by=", ".join(approvers) or None)
    _collect(ctx, run_id, step_id, op_id)


def _collect(ctx: Context, run_id: str, step_id: str, op_id: str) -> None:
    record = RedisState(ctx.redis, ctx.settings.redis.key_prefix).operation(op_id)
    if record is None or record.get("state") not in ("finished", "failed"):
        return
    if record["state"] == "failed":
        event = record.get("last_event") or {}
        message = str(event.get("message") or "the restore failed")
        _fail(ctx, run_id, step_id, message, str(event.get("hint") or ""))
        return
    summary = record.get("summary") or (record.get("last_event") or {}).get("summary") or {}
    outputs = _outputs(summary if isinstance(summary, dict) else {})
    now = ctx.clock()

    def change(run: RunState) -> str:
        state = run.steps[step_id]
        if state.status != StepStatus.RUNNING or state.op_id != op_id:
            return "stale"
        run.succeed(step_id, now, outputs=outputs)
        return "done"

    run, result = runbook_flow.runs(ctx).update(run_id, change)
    if result == "done":
        runbook_flow.step_event(ctx, run, step_id, "done")
        runbook_flow.advance(ctx, run_id)


def _outputs(summary: dict[str, Any]) -> dict[str, Any]:
    databases = summary.get("databases") or []
    outputs: dict[str, Any] = {
        k: v for k, v in summary.items() if isinstance(v, str | int | float | bool)
    }
    if isinstance(databases, dict):
        # A new instance's restore counts per database name, its totals already beside.
        outputs["databases"] = sorted(databases)
    elif databases:
        outputs["tables"] = sum(int(d.get("tables", 0)) for d in databases)
        outputs["rows"] = sum(int(d.get("rows", 0)) for d in databases)
        outputs["databases"] = [d.get("database") for d in databases]
    return outputs


def _fail(ctx: Context, run_id: str, step_id: str, message: str, hint: str = "") -> None:
    now = ctx.clock()

    def change(run: RunState) -> str:
        if run.steps[step_id].status != StepStatus.RUNNING:
            return "stale"
        run.steps[step_id].awaiting = None
        return run.fail(step_id, now, message, hint=hint or None)

    run, result = runbook_flow.runs(ctx).update(run_id, change)
    if result != "stale":
        runbook_flow.step_event(ctx, run, step_id, result)
        runbook_flow.advance(ctx, run_id)
