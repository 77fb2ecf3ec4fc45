"""Break-glass: an incident commander restores alone, loudly, and an approver reviews it after.

The authorization is its own signed record type (``BreakGlass``), so a two-person approval
can never be passed off as one, nor one as the other. Until an approver records a review,
``reminder_due`` keeps saying yes every ``interval``.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from workers.core.approvals import (
    ApprovalRequest,
    BackupFacts,
    BreakGlass,
    Decision,
    MissingRole,
    RequestState,
    RestorePlan,
    Verdict,
    open_request,
    sign,
)
from workers.core.errors import ConflictError, PermissionDenied, UsageError
from workers.core.events import ChatContext


def open_break_glass(
    plan: RestorePlan,
    *,
    commander: str,
    holds_commander_role: bool,
    reason: str,
    now: datetime,
    ttl: timedelta,
    key: bytes,
    backup: BackupFacts | None = None,
    chat: ChatContext | None = None,
    request_id: str | None = None,
) -> ApprovalRequest:
    """An approved request signed as break-glass; only incident commanders may make one."""
    if not holds_commander_role:
        raise MissingRole(
            "only incident commanders may break glass",
            hint="ask for a normal restore; approvers are in slack.roles.approvers",
        )
    request = open_request(
        plan,
        requester=commander,
        reason=reason,
        now=now,
        ttl=ttl,
        required=1,
        backup=backup,
        chat=chat,
        request_id=request_id,
    )
    record = BreakGlass(
        approval_id=f"bg-{secrets.token_hex(8)}",
        request_id=request.id,
        digest=request.digest,
        requester=commander,
        issued_at=now,
        expires_at=now + ttl,
        commander=commander,
        reason=request.reason,
    )
    return request.model_copy(
        update={"state": RequestState.APPROVED, "break_glass": True, "approval": sign(record, key)}
    )


def review(
    request: ApprovalRequest, *, user: str, holds_approver_role: bool, notes: str, now: datetime
) -> ApprovalRequest:
    """The break-glass request with an approver's post-hoc review recorded."""
    if not request.break_glass:
        raise UsageError(
            f"{request.id} was not a break-glass restore", hint="only break-glass needs a review"
        )
    if request.review is not None:
        raise ConflictError(
            f"{request.id} was already reviewed by {request.review.user}",
            hint=request.review.reason,
        )
    if not notes.strip():
        raise UsageError("a review needs notes", hint=f"/restore review {request.id} -- <notes>")
    if user == request.requester:
        raise PermissionDenied(
            "the incident commander who broke glass cannot review it",
            hint="another member of the approvers group must review",
        )
    if not holds_approver_role:
        raise MissingRole(
            "only members of the approvers group may review a break-glass restore",
            hint="approvers are listed in slack.roles.approvers",
        )
    decision = Decision(user=user, verdict=Verdict.REVIEW, at=now, reason=notes.strip())
    return request.model_copy(update={"review": decision})


def reminder_due(request: ApprovalRequest, now: datetime, interval: timedelta) -> bool:
    """Whether an unreviewed break-glass restore should be nagged about again now."""
    if not request.awaiting_review:
        return False
    last = request.reminded_at or request.created_at
    return now >= last + interval


def mark_reminded(request: ApprovalRequest, now: datetime) -> ApprovalRequest:
    """The request with the time of its latest reminder."""
    return request.model_copy(update={"reminded_at": now})
