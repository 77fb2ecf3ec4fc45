"""Approvals at their edges: what each state change records, and every refusal word for word."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from workers.core.approvals import (
    ApprovalRequest,
    RequestState,
    Transition,
    Verdict,
    authorize,
    consume,
    decide,
    expire_if_due,
    new_request_id,
    open_request,
    record_outcome,
    refuse,
)
from workers.core.errors import ConflictError, PermissionDenied, UsageError
from workers.core.restore_plan import RestorePlan

KEY = b"k" * 32
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
TTL = timedelta(minutes=30)
MINUTE = timedelta(minutes=1)
PLAN = RestorePlan(component="postgres", backup_id="postgres-20261124T0200Z-7f3a", target="app_r")


def pending(required: int = 1) -> ApprovalRequest:
    return open_request(
        PLAN,
        requester="UALICE",
        reason="drill",
        now=T0,
        ttl=TTL,
        required=required,
        request_id="rr-1",
    )


def approve(request: ApprovalRequest, user: str, at: datetime = T0 + MINUTE) -> Transition:
    return decide(
        request,
        user=user,
        verdict=Verdict.APPROVE,
        holds_approver_role=True,
        now=at,
        key=KEY,
        ttl=TTL,
    )


def approved() -> ApprovalRequest:
    return approve(pending(), "UBOB").request


def refused_by_authorize(
    request: ApprovalRequest,
    plan: RestorePlan = PLAN,
    *,
    key: bytes = KEY,
    now: datetime = T0 + MINUTE,
) -> PermissionDenied:
    with pytest.raises(PermissionDenied) as caught:
        authorize(request, key=key, plan=plan, now=now)
    return caught.value


def test_a_decision_is_from_slack_with_no_reason_unless_told() -> None:
    first = approve(pending(required=2), "UBOB")
    assert first.changed is True and first.error is None
    assert first.request.state == RequestState.PENDING
    (decision,) = first.request.decisions
    assert (decision.user, decision.verdict, decision.at) == ("UBOB", Verdict.APPROVE, T0 + MINUTE)
    assert decision.reason == "" and decision.via == "slack"
    by_cli = decide(
        pending(),
        user="UBOB",
        verdict=Verdict.APPROVE,
        holds_approver_role=True,
        now=T0,
        key=KEY,
        ttl=TTL,
        reason="  checked the backup ",
        via="cli",
    )
    assert by_cli.request.decisions[0].via == "cli"
    assert by_cli.request.decisions[0].reason == "checked the backup"


def test_the_approval_gets_a_fresh_id_of_16_hex_digits_and_runs_for_the_ttl() -> None:
    record = approved().approval
    assert record is not None
    assert re.fullmatch(r"ap-[0-9a-f]{16}", record.approval_id)
    assert record.issued_at == T0 + MINUTE and record.expires_at == T0 + MINUTE + TTL
    assert record.request_id == "rr-1" and record.requester == "UALICE"
    other = approved().approval
    assert other is not None and other.approval_id != record.approval_id


def test_a_denial_closes_the_request_when_it_is_made() -> None:
    denied = decide(
        pending(),
        user="UBOB",
        verdict=Verdict.DENY,
        holds_approver_role=True,
        now=T0 + MINUTE,
        key=KEY,
        ttl=TTL,
        reason="wrong backup",
    )
    assert denied.changed is True and denied.error is None
    assert denied.request.state == RequestState.DENIED
    assert denied.request.closed_at == T0 + MINUTE
    assert denied.request.approval is None


def test_an_expired_request_is_closed_at_the_time_it_was_found_with_a_note() -> None:
    late = T0 + TTL + MINUTE
    expired = expire_if_due(pending(), late)
    assert expired.state == RequestState.EXPIRED
    assert expired.closed_at == late
    assert expired.note == "no decision in time"


def test_a_click_after_the_deadline_says_when_it_expired_and_what_to_do(berlin_clock: None) -> None:
    moved = approve(pending(), "UBOB", at=T0 + TTL)
    assert moved.changed is True and moved.request.state == RequestState.EXPIRED
    assert isinstance(moved.error, PermissionDenied)
    assert moved.error.message == "restore request rr-1 expired at 03:30 UTC"
    assert moved.error.hint == "ask for the restore again"


def test_a_decided_request_names_every_approver(berlin_clock: None) -> None:
    first = approve(pending(required=2), "UBOB").request
    both = approve(first, "UDAVE").request
    again = approve(both, "UERIN")
    assert isinstance(again.error, ConflictError)
    assert again.error.message == "restore request rr-1 is already approved"
    assert again.error.hint == "approved by UBOB, UDAVE"


def test_a_request_id_is_sortable_by_its_utc_minute(berlin_clock: None) -> None:
    made = new_request_id(T0)
    assert re.fullmatch(r"rr-20261124T0300Z-[0-9a-f]{6}", made)
    assert pending().id == "rr-1"


def test_consuming_records_the_operation_and_when() -> None:
    used = consume(approved(), op_id="op-7", now=T0 + 2 * MINUTE)
    assert used.state == RequestState.EXECUTED
    assert used.op_id == "op-7"
    assert used.closed_at == T0 + 2 * MINUTE


def test_a_spent_approval_is_refused_in_plain_words() -> None:
    used = refused_by_authorize(consume(approved(), op_id="op-7", now=T0))
    assert used.message == "the approval of rr-1 was already used"
    assert used.hint == "an approval runs one restore, once; ask again"
    burned = refused_by_authorize(refuse(approved(), note="tampered", now=T0))
    assert burned.message == "the approval of rr-1 was already refused"
    assert burned.hint == "an approval runs one restore, once; ask again"


def test_only_an_approved_request_runs_even_when_it_holds_a_record() -> None:
    waiting = refused_by_authorize(pending())
    assert waiting.message == "restore request rr-1 is pending, not approved"
    assert waiting.hint == "a restore runs only after a second person approves it"
    denied_after = approved().model_copy(update={"state": RequestState.DENIED})
    assert denied_after.approval is not None
    assert refused_by_authorize(denied_after).message == (
        "restore request rr-1 is denied, not approved"
    )


def test_a_record_signed_with_another_key_is_refused_in_plain_words() -> None:
    forged = refused_by_authorize(approved(), key=b"another key")
    assert forged.message == "the approval of rr-1 does not carry a valid signature"
    assert forged.hint == "it was not made with this deployment's approval_key; ask again"


def test_a_plan_other_than_the_approved_one_names_the_request() -> None:
    changed = refused_by_authorize(approved(), plan=PLAN.model_copy(update={"target": "app"}))
    assert changed.message == (
        "the job's plan does not match what was approved for rr-1: target differ"
    )


def test_an_expired_approval_says_when_it_expired(berlin_clock: None) -> None:
    late = refused_by_authorize(approved(), now=T0 + MINUTE + TTL)
    assert late.message == "the approval of rr-1 expired at 03:31 UTC"
    assert late.hint == "ask for the restore again"


def test_a_request_without_a_reason_shows_how_to_give_one() -> None:
    with pytest.raises(UsageError) as caught:
        open_request(PLAN, requester="UALICE", reason=" \t", now=T0, ttl=TTL, required=1)
    assert caught.value.message == "a restore needs a reason"
    assert caught.value.hint == "/restore <component> <backup|latest> -- <reason>"


def test_a_burned_request_is_closed_when_the_worker_refused_it() -> None:
    burned = refuse(approved(), note="tampered", now=T0 + 3 * MINUTE)
    assert burned.closed_at == T0 + 3 * MINUTE
    assert burned.note == "tampered"


def test_the_outcome_is_a_copy_kept_on_the_executed_request() -> None:
    summary = {"tables": 12, "rows": 3400}
    done = record_outcome(consume(approved(), op_id="op-7", now=T0), summary)
    assert done.outcome == {"tables": 12, "rows": 3400}
    summary["tables"] = 0
    assert done.outcome["tables"] == 12
    assert done.state == RequestState.EXECUTED
