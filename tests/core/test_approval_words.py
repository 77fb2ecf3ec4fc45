"""Every refusal of a decision, word for word: what went wrong and what to do instead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workers.core.approvals import (
    ApprovalRequest,
    MissingRole,
    RequestState,
    Verdict,
    decide,
    open_request,
)
from workers.core.errors import ConflictError, KosmosError, PermissionDenied, UsageError
from workers.core.restore_plan import RestorePlan

KEY = b"k" * 32
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
TTL = timedelta(minutes=30)
PLAN = RestorePlan(component="postgres", backup_id="postgres-20261124T0200Z-7f3a", target="app_r")


def pending(required: int = 2) -> ApprovalRequest:
    return open_request(
        PLAN, requester="UALICE", reason="drill", now=T0, ttl=TTL, required=required
    )


def click(
    request: ApprovalRequest, user: str, verdict: Verdict, role: bool = True, reason: str = ""
) -> tuple[ApprovalRequest, KosmosError | None]:
    moved = decide(
        request,
        user=user,
        verdict=verdict,
        holds_approver_role=role,
        now=T0 + timedelta(minutes=1),
        key=KEY,
        ttl=TTL,
        reason=reason,
    )
    return moved.request, moved.error


def refusal(error: KosmosError | None) -> tuple[type, str, str | None]:
    assert error is not None
    return type(error), error.message, error.hint


def test_approval_refusals() -> None:
    request = pending()
    once, error = click(request, "UBOB", Verdict.APPROVE)
    assert error is None and once.approvers == ["UBOB"] and once.state == RequestState.PENDING
    rid = request.id
    cases = [
        (request, "UALICE", Verdict.APPROVE, True, ""),
        (request, "UDAVE", Verdict.APPROVE, False, ""),
        (once, "UBOB", Verdict.APPROVE, True, ""),
        (request, "UBOB", Verdict.REVIEW, True, ""),
        (request, "UBOB", Verdict.DENY, True, "  "),
        (request, "UDAVE", Verdict.DENY, False, "no"),
    ]
    found = [
        refusal(click(r, user, verdict, role, reason)[1])
        for r, user, verdict, role, reason in cases
    ]
    assert found == [
        (
            PermissionDenied,
            "you asked for this restore, so you cannot approve it",
            "a different member of the approvers group must approve",
        ),
        (
            MissingRole,
            "only members of the approvers group may approve a restore",
            "approvers are listed in slack.roles.approvers",
        ),
        (ConflictError, "you already approved this restore", "waiting for 1 more approver(s)"),
        (UsageError, "review is not a decision on a pending request", ""),
        (UsageError, "a denial needs a reason", f"deny {rid} --reason …"),
        (
            MissingRole,
            "only an approver (or the requester, to withdraw) may deny a restore",
            "approvers are listed in slack.roles.approvers",
        ),
    ]


def test_the_requester_may_withdraw_and_a_decided_request_says_by_whom() -> None:
    withdrawn, error = click(pending(), "UALICE", Verdict.DENY, role=False, reason=" not now ")
    assert error is None and withdrawn.state == RequestState.DENIED
    assert withdrawn.denial is not None and withdrawn.denial.reason == "not now"
    _, late = click(withdrawn, "UBOB", Verdict.APPROVE)
    assert refusal(late) == (
        ConflictError,
        f"restore request {withdrawn.id} is already denied",
        "denied by UALICE: not now",
    )
    approved, _ = click(pending(required=1), "UBOB", Verdict.APPROVE)
    assert approved.state == RequestState.APPROVED
    _, again = click(approved, "UCAROL", Verdict.APPROVE)
    assert refusal(again)[1:] == (
        f"restore request {approved.id} is already approved",
        "approved by UBOB",
    )


@pytest.mark.parametrize("required", [1, 2])
def test_the_approval_is_signed_when_enough_people_approved(required: int) -> None:
    request, _ = click(pending(required), "UBOB", Verdict.APPROVE)
    if required == 2:
        assert request.approval is None and request.state == RequestState.PENDING
        request, _ = click(request, "UCAROL", Verdict.APPROVE)
    assert request.state == RequestState.APPROVED and request.approval is not None
    approval = request.approval
    assert approval.approvers == tuple(["UBOB", "UCAROL"][:required])
    assert (approval.request_id, approval.digest, approval.requester) == (
        request.id,
        request.digest,
        "UALICE",
    )
    assert (approval.issued_at, approval.expires_at) == (
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=1) + TTL,
    )
