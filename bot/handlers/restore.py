"""``/restore`` and ``/backup audit``: request, approve, deny, break glass, review, audit.

``answer`` is shared by every front door; Slack's listener and buttons are in
:mod:`bot.slack.restore`, and the cards are kept true by :mod:`bot.relays.restore_cards`.
Every rule is enforced in ``workers.restore_requests`` and the core, never by what a card
shows; the approvers role is looked up afresh for each decision.
"""

from __future__ import annotations

import contextlib
from typing import Any

from bot.grammar.backup import BackupAudit
from bot.grammar.command import Command
from bot.grammar.restore import (
    HELP,
    RestoreApprove,
    RestoreBreakGlass,
    RestoreDeny,
    RestoreHelp,
    RestoreRequest,
    RestoreReview,
)
from bot.handlers.desk import Caller, Desk
from bot.replies.backup import HelpReply
from bot.replies.restore import AuditReply, CardReply, DecisionReply
from bot.roles import Authorizer, SlackGroups
from workers.context import Context
from workers.core.approvals import ApprovalRequest, Verdict, new_request_id
from workers.core.audit import AuditAction
from workers.core.errors import KosmosError, PermissionDenied, StorageUnavailable, UsageError
from workers.restore_plans import resolve_plan, validate_plan
from workers.restore_requests import (
    audit_of,
    break_glass,
    decide_request,
    open_restore_request,
    review_request,
    store_of,
)

APPROVERS = "approvers"
COMMANDERS = "incident_commanders"


def answer(
    desk: Desk, caller: Caller, command: Command
) -> CardReply | DecisionReply | AuditReply | HelpReply:
    """Answer one parsed, authorized ``/restore`` (or ``/backup audit``) command."""
    ctx = desk.ctx
    if isinstance(command, BackupAudit):
        return AuditReply(audit_of(ctx).tail(command.limit), ctx.clock())
    if isinstance(command, RestoreHelp):
        return HelpReply("restore", list(HELP))
    if isinstance(command, RestoreRequest):
        return _request(desk, caller, command)
    if isinstance(command, RestoreApprove | RestoreDeny):
        verdict = Verdict.APPROVE if isinstance(command, RestoreApprove) else Verdict.DENY
        reason = command.reason if isinstance(command, RestoreDeny) else ""
        return decide(
            desk, caller.user, command.request_id, verdict, reason, via=caller.chat.source
        )
    if isinstance(command, RestoreReview):
        reviewed = review_request(
            ctx,
            command.request_id,
            user=caller.user,
            holds_approver_role=APPROVERS in fresh_roles(desk, caller.user),
            notes=command.notes,
        )
        return _decision_reply(ctx, reviewed, f"Review of {reviewed.id} recorded.")
    raise UsageError(f"/restore cannot answer {type(command).__name__}")


def decide(
    desk: Desk, user: str, request_id: str, verdict: Verdict, reason: str, *, via: str
) -> DecisionReply:
    """One approve or deny, with the approvers role checked now (not from a cache)."""
    outcome = decide_request(
        desk.ctx,
        request_id,
        user=user,
        verdict=verdict,
        holds_approver_role=APPROVERS in fresh_roles(desk, user),
        reason=reason,
        via=via if via in ("slack", "console", "cli") else "slack",
    )
    request = outcome.request
    if outcome.error is not None:
        notice = f"{outcome.error.message}" + (
            f" ({outcome.error.hint})" if outcome.error.hint else ""
        )
    elif verdict == Verdict.DENY:
        notice = f"You denied {request.id}."
    elif outcome.enqueued:
        notice = f"You approved {request.id}; restore {outcome.enqueued} is queued."
    else:
        left = request.required - len(request.approvers)
        notice = f"You approved {request.id}; {left} more approver(s) needed."
    return _decision_reply(desk.ctx, request, notice, error=outcome.error)


def audit_role_refusal(ctx: Context, user: str, action: str, error: PermissionDenied) -> None:
    """Record in the audit log that a role check refused ``user`` (never masks the refusal)."""
    with contextlib.suppress(StorageUnavailable):
        audit_of(ctx).record(
            AuditAction.ROLE_REFUSAL, user, at=ctx.clock(), subject=action, message=error.message
        )


def fresh_roles(desk: Desk, user: str) -> frozenset[str]:
    """The roles ``user`` holds right now: user groups are asked again, not read from cache."""
    authorizer = desk.authorizer
    if isinstance(authorizer.groups, SlackGroups):
        authorizer = Authorizer(
            authorizer.roles, SlackGroups(authorizer.groups.client, ttl=0.0), authorizer.open_access
        )
    return authorizer.roles_of(user)


def _request(desk: Desk, caller: Caller, command: RestoreRequest) -> CardReply:
    ctx = desk.ctx
    request_id = new_request_id(ctx.clock())
    if caller.request_key:
        earlier = desk.claim(caller.request_key, request_id)
        if earlier is not None:
            request = store_of(ctx).get(earlier)
            return CardReply(
                request, ctx.clock(), _rto(ctx), f"Already requested as {earlier}.", True
            )

    def prepare() -> tuple[Any, Any]:
        plan = resolve_plan(
            ctx,
            command.component,
            command.ref,
            target=command.target or command.target_env or command.namespaces,
            database=command.database,
            point=command.point,
            in_place=command.in_place,
            options=command.engine_options(),
        )
        return plan, validate_plan(ctx, plan)

    try:
        plan, facts = desk.read(prepare)
        request, notice = _open(desk, caller, command, plan, facts, request_id)
    except BaseException:
        if caller.request_key:
            desk.forget(caller.request_key)
        raise
    return CardReply(request, ctx.clock(), _rto(ctx), notice)


def _open(
    desk: Desk,
    caller: Caller,
    command: RestoreRequest,
    plan: Any,
    facts: Any,
    request_id: str,
) -> tuple[ApprovalRequest, str]:
    """Open the request (or run a break-glass restore) and say what happens next."""
    if isinstance(command, RestoreBreakGlass):
        request = break_glass(
            desk.ctx,
            plan,
            commander=caller.user,
            holds_commander_role=COMMANDERS in fresh_roles(desk, caller.user),
            reason=command.reason,
            chat=caller.chat,
            request_id=request_id,
        )
        notice = (
            f"Break-glass restore {request.id} runs as {request.op_id}: it is announced "
            f"and audited, and an approver must review it (/restore review {request.id} -- …)."
        )
    else:
        request = open_restore_request(
            desk.ctx,
            plan,
            caller.user,
            command.reason,
            caller.chat,
            facts=facts,
            request_id=request_id,
        )
        ttl = desk.ctx.settings.approvals.ttl
        notice = (
            f"Restore request {request.id} is waiting for {request.required} approver(s) "
            f"other than you; it expires in {int(ttl.total_seconds() // 60)} minutes."
        )
    return request, notice


def _decision_reply(
    ctx: Context, request: ApprovalRequest, notice: str, error: KosmosError | None = None
) -> DecisionReply:
    mark = ":no_entry: " if error is not None else ""
    return DecisionReply(request, ctx.clock(), _rto(ctx), mark + notice)


def _rto(ctx: Context) -> float:
    return ctx.settings.objectives.rto.total_seconds()
