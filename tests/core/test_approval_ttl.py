"""The approval TTL at its edge: one second before it still counts, one second after not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workers.core.approvals import (
    ApprovalRequest,
    RequestState,
    Verdict,
    authorize,
    decide,
    expire_if_due,
    open_request,
)
from workers.core.errors import PermissionDenied
from workers.core.restore_plan import RestorePlan

KEY = b"k" * 32
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
TTL = timedelta(minutes=30)
SECOND = timedelta(seconds=1)
PLAN = RestorePlan(component="postgres", backup_id="postgres-20261124T0200Z-7f3a", target="app_r")


def pending() -> ApprovalRequest:
    return open_request(PLAN, requester="UALICE", reason="drill", now=T0, ttl=TTL, required=1)


def approve(request: ApprovalRequest, at: datetime) -> ApprovalRequest:
    moved = decide(
        request,
        user="UBOB",
        verdict=Verdict.APPROVE,
        holds_approver_role=True,
        now=at,
        key=KEY,
        ttl=TTL,
    )
    if moved.error is not None:
        raise moved.error
    return moved.request


def test_a_pending_request_is_open_until_its_deadline() -> None:
    request = pending()
    deadline = request.expires_at
    assert deadline == T0 + TTL
    assert expire_if_due(request, deadline - SECOND) is request
    assert expire_if_due(request, deadline).state == RequestState.EXPIRED
    assert expire_if_due(request, deadline + SECOND).state == RequestState.EXPIRED


def test_an_approval_one_second_before_the_deadline_counts_one_after_does_not() -> None:
    deadline = pending().expires_at
    assert approve(pending(), deadline - SECOND).state == RequestState.APPROVED
    late = decide(
        pending(),
        user="UBOB",
        verdict=Verdict.APPROVE,
        holds_approver_role=True,
        now=deadline + SECOND,
        key=KEY,
        ttl=TTL,
    )
    assert late.request.state == RequestState.EXPIRED and late.request.approval is None
    assert isinstance(late.error, PermissionDenied) and "expired at 03:30 UTC" in late.error.message


def test_a_given_approval_runs_until_one_second_before_its_ttl() -> None:
    approved = approve(pending(), T0 + timedelta(minutes=5))
    assert approved.approval is not None
    until = approved.approval.expires_at
    assert until == T0 + timedelta(minutes=5) + TTL
    record = authorize(approved, key=KEY, plan=PLAN, now=until - SECOND)
    assert record == approved.approval
    for late in (until, until + SECOND):
        with pytest.raises(PermissionDenied, match="expired at 03:35 UTC"):
            authorize(approved, key=KEY, plan=PLAN, now=late)
