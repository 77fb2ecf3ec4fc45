"""The flows of a restore request, shared by Slack, the console and the CLI.

Open a request (the plan validated first), decide on it (approve/deny under the rules of
``workers.core.approvals``), break glass, review, expire, remind. Every step writes through
the store's compare-and-set and appends to the audit log; only the one caller whose write
moved a request to ``approved`` enqueues its restore, so nothing runs twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workers import queues
from workers.context import Context
from workers.core.approvals import (
    ApprovalRequest,
    BackupFacts,
    MissingRole,
    RequestState,
    RestorePlan,
    Verdict,
    decide,
    open_request,
)
from workers.core.audit import AuditAction, ChainReport
from workers.core.break_glass import mark_reminded, open_break_glass, reminder_due, review
from workers.core.config import Settings
from workers.core.errors import ConfigError, KosmosError, PermissionDenied
from workers.core.events import ChatContext, Event, EventType
from workers.core.ids import new_operation_id
from workers.core.operations import OperationKind, OperationRequest
from workers.core.restore_plan import job_params
from workers.restore.planning import validate_plan
from workers.state.approval_store import ApprovalStore
from workers.state.audit_log import AuditLog, verify_export

MIN_KEY_BYTES = 16


def approval_key(settings: Settings) -> bytes:
    """The shared HMAC key; ConfigError when approvals are not configured."""
    if settings.approval_key is None or not settings.approval_key.get_secret_value():
        raise ConfigError(
            "approval_key is not set, so no restore can be approved",
            hint="set approval_key (KOSMOS__APPROVAL_KEY) to one secret shared by bot and workers",
        )
    key = settings.approval_key.get_secret_value().encode()
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"approval_key is too short to sign approvals (at least {MIN_KEY_BYTES} bytes)",
            hint="generate one with: python3 -c 'import secrets; print(secrets.token_hex(32))'",
        )
    return key


def store_of(ctx: Context) -> ApprovalStore:
    """The approval store for this deployment."""
    return ApprovalStore(ctx.redis, ctx.settings.redis.key_prefix)


def audit_of(ctx: Context) -> AuditLog:
    """The audit log for this deployment."""
    return AuditLog(ctx.redis, ctx.settings.redis.key_prefix)


@dataclass(frozen=True)
class Outcome:
    """What one decision did: the request now, the refusal (if any), the restore enqueued."""

    request: ApprovalRequest
    error: KosmosError | None = None
    enqueued: str | None = None
    changed: bool = False


def open_restore_request(
    ctx: Context,
    plan: RestorePlan,
    requester: str,
    reason: str,
    chat: ChatContext | None = None,
    *,
    facts: BackupFacts | None = None,
    request_id: str | None = None,
) -> ApprovalRequest:
    """Store a pending request (audited) once its plan is valid; the card is the caller's.

    ``facts`` are what ``validate_plan`` returned for this plan, when the caller already
    validated it (a chat handler does so under its read deadline).
    """
    approval_key(ctx.settings)
    facts = facts or validate_plan(ctx, plan)
    now = ctx.clock()
    request = open_request(
        plan,
        requester=requester,
        reason=reason,
        now=now,
        ttl=ctx.settings.approvals.ttl,
        required=ctx.settings.component(plan.component).approvers_required,
        backup=facts,
        chat=chat,
        request_id=request_id,
    )
    store_of(ctx).create(request)
    _audit(ctx, AuditAction.REQUEST, requester, request, now, reason=request.reason)
    return request


def attach_card(ctx: Context, request_id: str, channel: str, ts: str) -> ApprovalRequest:
    """Remember where the request's card is, so later changes update it in place."""
    _, after = store_of(ctx).update(
        request_id,
        lambda r: r if r.card_ts else r.model_copy(update={"card_channel": channel, "card_ts": ts}),
    )
    return after


def decide_request(
    ctx: Context,
    request_id: str,
    *,
    user: str,
    verdict: Verdict,
    holds_approver_role: bool,
    reason: str = "",
    via: str = "slack",
) -> Outcome:
    """Record one approve/deny; enqueue the restore if this decision completed the approval."""
    key, now = approval_key(ctx.settings), ctx.clock()
    op_id = new_operation_id(now)
    seen: dict[str, KosmosError | None] = {}

    def step(current: ApprovalRequest) -> ApprovalRequest:
        moved = decide(
            current,
            user=user,
            verdict=verdict,
            holds_approver_role=holds_approver_role,
            now=now,
            key=key,
            ttl=ctx.settings.approvals.ttl,
            reason=reason,
            via=via,
        )
        seen["error"] = moved.error
        if moved.request.state == RequestState.APPROVED and current.state != RequestState.APPROVED:
            return moved.request.model_copy(update={"op_id": op_id})
        return moved.request

    before, after = store_of(ctx).update(request_id, step)
    error = seen.get("error")
    changed = after is not before
    if error is not None:
        if changed and after.state == RequestState.EXPIRED:
            _audit(ctx, AuditAction.EXPIRE, "system", after, now, note=after.note)
        _audit_refusal(ctx, after, user, verdict, error, now)
        return Outcome(after, error=error, changed=changed)
    action = AuditAction.APPROVE if verdict == Verdict.APPROVE else AuditAction.DENY
    _audit(ctx, action, user, after, now, reason=reason.strip(), state=after.state.value, via=via)
    enqueued = None
    if before.state == RequestState.PENDING and after.state == RequestState.APPROVED:
        enqueued = enqueue_restore(ctx, after)
    return Outcome(after, enqueued=enqueued, changed=True)


def break_glass(
    ctx: Context,
    plan: RestorePlan,
    *,
    commander: str,
    holds_commander_role: bool,
    reason: str,
    chat: ChatContext | None = None,
    request_id: str | None = None,
) -> ApprovalRequest:
    """An incident commander's lone restore: validated, signed, audited, enqueued at once."""
    key, now = approval_key(ctx.settings), ctx.clock()
    try:
        facts = validate_plan(ctx, plan)
        request = open_break_glass(
            plan,
            commander=commander,
            holds_commander_role=holds_commander_role,
            reason=reason,
            now=now,
            ttl=ctx.settings.approvals.ttl,
            key=key,
            backup=facts,
            chat=chat,
            request_id=request_id,
        )
    except PermissionDenied as exc:
        audit_of(ctx).record(
            AuditAction.ROLE_REFUSAL,
            commander,
            at=now,
            component=plan.component,
            attempt="break-glass",
            message=exc.message,
            backup=plan.backup_id,
        )
        raise
    request = request.model_copy(update={"op_id": new_operation_id(now)})
    store_of(ctx).create(request)
    _audit(ctx, AuditAction.BREAK_GLASS, commander, request, now, reason=request.reason)
    enqueue_restore(ctx, request)
    return request


def review_request(
    ctx: Context, request_id: str, *, user: str, holds_approver_role: bool, notes: str
) -> ApprovalRequest:
    """Record an approver's post-hoc review of a break-glass restore (audited)."""
    now = ctx.clock()
    try:
        _, after = store_of(ctx).update(
            request_id,
            lambda r: review(
                r, user=user, holds_approver_role=holds_approver_role, notes=notes, now=now
            ),
        )
    except PermissionDenied as exc:
        audit_of(ctx).record(
            AuditAction.ROLE_REFUSAL,
            user,
            at=now,
            subject=request_id,
            attempt="review",
            message=exc.message,
        )
        raise
    _audit(ctx, AuditAction.REVIEW, user, after, now, notes=notes.strip())
    return after


def enqueue_restore(ctx: Context, request: ApprovalRequest) -> str:
    """Submit the approved request's restore job (its op id was fixed by the approving write)."""
    record = request.approval
    assert record is not None and request.op_id is not None
    chat = request.chat
    job = OperationRequest(
        op_id=request.op_id,
        kind=OperationKind.RESTORE,
        component=request.plan.component,
        params=job_params(request.plan).model_copy(
            update={"approval_id": record.approval_id, "request_id": request.id}
        ),
        chat=ChatContext(
            source=chat.source,
            channel=request.card_channel or chat.channel,
            thread_ts=request.card_ts or chat.thread_ts,
            user=request.requester,
        ),
        requested_at=ctx.clock(),
        requested_by=request.requester,
    )
    store_of(ctx).link_operation(request.op_id, request.id)
    return queues.submit(ctx.redis, ctx.settings, job)


def expire_stale(ctx: Context) -> list[ApprovalRequest]:
    """Expire pending requests past their deadline (audited); return those expired now."""
    now = ctx.clock()
    expired = store_of(ctx).expire_due(now)
    for request in expired:
        _audit(ctx, AuditAction.EXPIRE, "system", request, now, note=request.note)
    return expired


def remind_unreviewed(ctx: Context) -> list[ApprovalRequest]:
    """Alert once per interval about each unreviewed break-glass restore (scheduler calls it)."""
    from workers.state.redis_state import RedisState

    now, interval = ctx.clock(), ctx.settings.approvals.review_reminder
    state = RedisState(ctx.redis, ctx.settings.redis.key_prefix)
    reminded = []
    for request in list(store_of(ctx).open_requests()):
        if not reminder_due(request, now, interval):
            continue
        before, after = store_of(ctx).update(
            request.id, lambda r: mark_reminded(r, now) if reminder_due(r, now, interval) else r
        )
        if after is before:
            continue  # another scheduler or replica reminded first
        state.append_event(reminder_event(ctx, after, now))
        reminded.append(after)
    return reminded


def reminder_event(ctx: Context, request: ApprovalRequest, now: datetime) -> Event:
    """The alert that asks an approver to review a break-glass restore."""
    channel = request.card_channel or request.chat.channel or ctx.settings.slack.channel
    return Event(
        op_id=request.op_id or request.id,
        type=EventType.ALERT,
        at=now,
        operation="restore",
        component=request.plan.component,
        chat=ChatContext(source="monitor", channel=channel, thread_ts=request.card_ts),
        message=f"break-glass restore {request.id} by {request.requester} is not reviewed yet",
        hint=f"an approver: /restore review {request.id} -- <notes>",
        summary={"request_id": request.id, "break_glass": True},
    )


def _audit(
    ctx: Context,
    action: AuditAction,
    actor: str,
    request: ApprovalRequest,
    now: datetime,
    **details: object,
) -> None:
    audit_of(ctx).record(
        action,
        actor,
        at=now,
        subject=request.id,
        component=request.plan.component,
        backup=request.plan.backup_id,
        target=request.plan.target_label(),
        digest=request.digest,
        **details,
    )


def _audit_refusal(
    ctx: Context,
    request: ApprovalRequest,
    user: str,
    verdict: Verdict,
    error: KosmosError,
    now: datetime,
) -> None:
    if not isinstance(error, PermissionDenied):
        return  # a double click or a missing reason: nobody was refused anything
    action = AuditAction.ROLE_REFUSAL if isinstance(error, MissingRole) else AuditAction.REFUSE
    _audit(ctx, action, user, request, now, attempt=verdict.value, message=error.message)


def verify_exported_audit(ctx: Context) -> ChainReport:
    """Check the audit log's hash chain as exported to the backup store."""
    return verify_export(ctx.repo.store)
