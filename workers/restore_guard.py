"""What the restore job calls before it touches anything, and after it is done.

:func:`authorize_restore` takes the request id and approval id from the job's parameters,
rebuilds the plan from those parameters, and checks that the approval exists, its HMAC
signature verifies with this worker's own key, its digest is the digest of the job's plan,
it has not expired, it is bound to this operation, and it was not used before. Then it asks
the target's server and the live source again who they are (the target must still be the
server that was approved), and in one compare-and-set on the request checks the approval
once more and marks it used. Anything else is refused: the refusal is audited, an approved
request burned (a pending one is left alone, and so is one whose approval names another
operation: its own job is still queued), and a failed event emitted. A job enqueued into RQ
by hand carries no approval that passes, so it never runs.
"""

from __future__ import annotations

import contextlib
import socket
from datetime import datetime
from typing import Any

import structlog

from workers.context import Context
from workers.core.approvals import (
    Approval,
    ApprovalRequest,
    BreakGlass,
    authorize,
    consume,
    record_outcome,
    refuse,
)
from workers.core.audit import AuditAction
from workers.core.errors import ConfigError, KosmosError, NotFoundError, PermissionDenied
from workers.core.events import Event, EventType
from workers.core.operations import OperationRequest, RestoreParams
from workers.core.restore_plan import RestorePlan, plan_from_params
from workers.restore_plans import recheck_target
from workers.restore_requests import (
    approval_key,
    audit_of,
    expire_stale,
    remind_unreviewed,
    store_of,
)
from workers.state.redis_state import RedisState

SUMMARY_KEYS = ("backup_id", "duration_seconds", "checksums_matched")


class OtherOperation(PermissionDenied):
    """The approval holds, but for another operation: a replay, which burns nothing."""


def worker_name() -> str:
    """How a worker signs its audit records."""
    return f"worker@{socket.gethostname()}"


def authorize_restore(ctx: Context, job: OperationRequest) -> Approval | BreakGlass:
    """Verify and spend the job's approval; PermissionDenied (audited, reported) otherwise."""
    now = ctx.clock()
    params = RestoreParams.of(job)
    request_id = params.request_id
    try:
        key = _key(ctx)
        if request_id is None or not params.approval_id:
            raise PermissionDenied(
                f"restore {job.op_id} carries no approval",
                hint="restores run only from an approved request: /restore … in the channel",
            )
        plan = plan_from_params(job.component or "", params)
        store = store_of(ctx)
        approved = _verified(store.get(request_id), job, key=key, plan=plan, now=now)
        # Asked only once the approval holds: a forged job makes no connection anywhere.
        recheck_target(ctx, approved.plan)
        _, spent = store.update(
            request_id,
            lambda r: consume(
                _verified(r, job, key=key, plan=plan, now=now), op_id=job.op_id, now=now
            ),
        )
    except (PermissionDenied, NotFoundError) as exc:
        refused = PermissionDenied(exc.message, hint=exc.hint)
        # A replay must not cancel the approved job queued behind it (or ahead: it has run).
        _refused(ctx, job, request_id, refused, burn=not isinstance(exc, OtherOperation))
        raise refused from None
    assert spent.approval is not None
    audit_of(ctx).record(
        AuditAction.EXECUTE,
        worker_name(),
        at=now,
        subject=spent.id,
        component=spent.plan.component,
        op_id=job.op_id,
        approval_id=spent.approval.approval_id,
        kind=spent.approval.kind,
        digest=spent.digest,
        backup=spent.plan.backup_id,
        target=spent.plan.target_label(),
    )
    return spent.approval


def _verified(
    request: ApprovalRequest, job: OperationRequest, *, key: bytes, plan: RestorePlan, now: datetime
) -> ApprovalRequest:
    """The request, if its approval lets exactly the job's plan run now as this operation."""
    # The job says what to do; the request adds which server plan time found (digested too).
    found = plan.model_copy(update={"target_identity": request.plan.target_identity})
    record = authorize(request, key=key, plan=found, now=now)
    if record.approval_id != RestoreParams.of(job).approval_id or request.op_id != job.op_id:
        raise OtherOperation(
            f"the approval of {request.id} was given to another operation",
            hint=f"it runs as {request.op_id}, not {job.op_id}",
        )
    return request


def restore_ended(
    ctx: Context,
    job: OperationRequest,
    *,
    summary: dict[str, Any] | None = None,
    error: BaseException | None = None,
) -> None:
    """Record the restore's result on its request and in the audit, then export the audit."""
    request_id = RestoreParams.of(job).request_id
    if request_id is None:
        return
    now, log = ctx.clock(), structlog.get_logger("kosmos.restore")
    outcome: dict[str, Any] = {"ok": error is None, "ended_at": now.isoformat()}
    outcome["rto_seconds"] = ctx.settings.objectives.rto.total_seconds()
    if summary is not None:
        outcome |= {"summary": summary}
    if error is not None:
        outcome["error"] = error.message if isinstance(error, KosmosError) else type(error).__name__
    try:
        _, request = store_of(ctx).update(request_id, lambda r: record_outcome(r, outcome))
        short = {k: (summary or {}).get(k) for k in SUMMARY_KEYS if k in (summary or {})}
        audit_of(ctx).record(
            AuditAction.FINISH if error is None else AuditAction.FAIL,
            worker_name(),
            at=now,
            subject=request_id,
            component=request.plan.component,
            op_id=job.op_id,
            error=outcome.get("error"),
            **short,
        )
        export_audit(ctx)
    except KosmosError as exc:
        # The restore's own result stands; its bookkeeping is retried by the daily export.
        log.warning("restore bookkeeping failed", op_id=job.op_id, error=exc.message)


def export_audit(ctx: Context) -> list[str]:
    """Export new audit records to the backup store (daily, and after every restore)."""
    return audit_of(ctx).export(ctx.repo.store)


def _key(ctx: Context) -> bytes:
    try:
        return approval_key(ctx.settings)
    except ConfigError as exc:
        raise PermissionDenied(exc.message, hint=exc.hint) from None


def _refused(
    ctx: Context,
    job: OperationRequest,
    request_id: str | None,
    error: PermissionDenied,
    *,
    burn: bool,
) -> None:
    now = ctx.clock()
    if request_id is not None and burn:
        with contextlib.suppress(NotFoundError):
            store_of(ctx).update(request_id, lambda r: refuse(r, note=error.message, now=now))
    audit_of(ctx).record(
        AuditAction.REFUSE,
        worker_name(),
        at=now,
        subject=request_id or job.op_id,
        component=job.component,
        op_id=job.op_id,
        requested_by=job.requested_by,
        message=error.message,
    )
    state = RedisState(ctx.redis, ctx.settings.redis.key_prefix)
    if state.operation(job.op_id) is None:
        # Enqueued by hand, past submit(): no registered operation for the runner to fail,
        # so the refusal is announced here.
        state.append_event(
            Event(
                op_id=job.op_id,
                type=EventType.FAILED,
                at=now,
                operation="restore",
                component=job.component,
                chat=job.chat,
                error_class="PermissionDenied",
                message=error.message,
                hint=error.hint,
            )
        )


def upkeep(ctx: Context) -> None:
    """The scheduler's share: expire, nag about unreviewed break-glass, export once a day."""
    log = structlog.get_logger("kosmos.approvals")
    try:
        expire_stale(ctx)
        remind_unreviewed(ctx)
        day = ctx.clock().date().isoformat()
        key = f"{ctx.settings.redis.key_prefix}:audit:export-day"
        if ctx.redis.get(key) not in (day, day.encode()):
            export_audit(ctx)
            ctx.redis.set(key, day)
    except KosmosError as exc:
        log.warning("approvals upkeep failed", error=exc.message)
