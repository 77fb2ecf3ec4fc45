"""Approval gates of runbook steps, carried out by the two-person restore requests.

A job step marked ``approval: true`` does not run its restore itself: it opens a restore
request for exactly its resolved plan (``workers.restore.requests``), so the same rules
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

from workers.context import Context
from workers.core.errors import KosmosError
from workers.core.runbook import JobStep
from workers.core.runbook_run import Awaiting, RunState, StepStatus
from workers.runbooks import operations as runbook_ops
from workers.runbooks.runs import runs, step_chat, step_event
from workers.state.redis_state import RedisState

log = structlog.get_logger("kosmos.dr")
_CLOSED = ("denied", "expired", "refused")


def open_gate(ctx: Context, run: RunState, step_id: str) -> str | None:
    """Open the restore request a gated step waits for; record its id (or fail the step).

    None when it could not be opened and the step failed: the run must advance again.
    """
    from workers.restore.planning import resolve_plan
    from workers.restore.requests import open_restore_request

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
            step_chat(run),
        )
    except KosmosError as exc:
        _fail(ctx, run.run_id, step_id, f"cannot ask for approval: {exc.message}", exc.hint)
        return None

    run, _ = runs(ctx).update(run.run_id, lambda r: r.gate_requested(step_id, request.id))
    step_event(ctx, run, step_id, f"approval requested: {request.id}")
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


def follow_gates(ctx: Context, run_id: str) -> bool:
    """Move every gated step of a run along with its restore request and job.

    True when a step ended or failed, so the run must advance (``flow.follow_gates`` does).
    """
    from workers.restore.requests import store_of

    run = runs(ctx).load(run_id)
    ended = False
    for step_id, state in run.steps.items():
        if state.status != StepStatus.RUNNING or not (state.approval_id or "").startswith("rr-"):
            continue
        if state.awaiting == Awaiting.APPROVAL:
            request = store_of(ctx).find(str(state.approval_id))
            if request is None:
                continue
            if request.state.value in _CLOSED:
                why = request.note or (request.denial.reason if request.denial else "")
                message = f"approval {request.state.value}: {why}".strip(": ")
                ended |= _fail(ctx, run_id, step_id, message)
            elif request.op_id:
                ended |= _approved(ctx, run_id, step_id, request.op_id, request.approvers)
        elif state.op_id:
            ended |= _collect(ctx, run_id, step_id, state.op_id)
    return ended


def _approved(ctx: Context, run_id: str, step_id: str, op_id: str, approvers: list[str]) -> bool:
    by = ", ".join(approvers) or None
    run, _ = runs(ctx).update(run_id, lambda r: r.gate_approved(step_id, op_id, by=by))
    step_event(ctx, run, step_id, "approved", by=by)
    return _collect(ctx, run_id, step_id, op_id)


def _collect(ctx: Context, run_id: str, step_id: str, op_id: str) -> bool:
    """True when the gated job ended, and the step with it (done, or failed)."""
    record = RedisState(ctx.redis, ctx.settings.redis.key_prefix).operation(op_id)
    if record is None or record.get("state") not in ("finished", "failed"):
        return False
    if record["state"] == "failed":
        event = record.get("last_event") or {}
        message = str(event.get("message") or "the restore failed")
        return _fail(ctx, run_id, step_id, message, str(event.get("hint") or ""))
    summary = record.get("summary") or (record.get("last_event") or {}).get("summary") or {}
    outputs = _outputs(summary if isinstance(summary, dict) else {})
    now = ctx.clock()
    run, result = runs(ctx).update(
        run_id, lambda r: r.gate_job_done(step_id, op_id, now, outputs=outputs)
    )
    if result == "done":
        step_event(ctx, run, step_id, "done")
    return result == "done"


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


def _fail(ctx: Context, run_id: str, step_id: str, message: str, hint: str = "") -> bool:
    """Fail a gated step through its policy; True unless it had moved on (the run advances)."""
    now = ctx.clock()
    run, result = runs(ctx).update(
        run_id, lambda r: r.gate_failed(step_id, now, message, hint=hint or None)
    )
    if result != "stale":
        step_event(ctx, run, step_id, result)
    return result != "stale"
