"""Break-glass, word for word: who may, what each refusal says, and when the reminders come."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from workers.core.approvals import (
    ApprovalRequest,
    BackupFacts,
    MissingRole,
    RequestState,
    Verdict,
    open_request,
    signature_valid,
)
from workers.core.break_glass import mark_reminded, open_break_glass, reminder_due, review
from workers.core.errors import ConflictError, KosmosError, PermissionDenied, UsageError
from workers.core.events import ChatContext
from workers.core.restore_plan import RestorePlan

KEY = b"k" * 32
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
TTL = timedelta(minutes=30)
PLAN = RestorePlan(component="postgres", backup_id="postgres-20261124T0200Z-7f3a", target="app_r")
FACTS = BackupFacts(kind="postgres-logical", finished_at=T0, size=42)
CHAT = ChatContext(source="slack", channel="COPS", user="UIC")


def broken(**extra: object) -> ApprovalRequest:
    return open_break_glass(
        PLAN,
        commander="UIC",
        holds_commander_role=True,
        reason=" fire ",
        now=T0,
        ttl=TTL,
        key=KEY,
        **extra,  # type: ignore[arg-type]
    )


def said(error: KosmosError) -> tuple[str, str | None]:
    return error.message, error.hint


def test_a_break_glass_request_is_approved_signed_and_carries_what_it_was_given() -> None:
    request = broken(backup=FACTS, chat=CHAT, request_id="rr-20261124T0300Z-abcdef")
    assert (request.id, request.backup, request.chat) == ("rr-20261124T0300Z-abcdef", FACTS, CHAT)
    assert request.state == RequestState.APPROVED and request.break_glass and request.required == 1
    record = request.approval
    assert record is not None and signature_valid(record, KEY)
    assert re.fullmatch(r"bg-[0-9a-f]{16}", record.approval_id)
    assert (record.commander, record.reason, record.expires_at) == ("UIC", "fire", T0 + TTL)


def test_only_an_incident_commander_breaks_glass() -> None:
    with pytest.raises(MissingRole) as caught:
        open_break_glass(
            PLAN, commander="UOPS", holds_commander_role=False, reason="r", now=T0, ttl=TTL, key=KEY
        )
    assert said(caught.value) == (
        "only incident commanders may break glass",
        "ask for a normal restore; approvers are in slack.roles.approvers",
    )


def test_each_review_refusal_says_why_and_what_to_do() -> None:
    plain = open_request(PLAN, requester="UA", reason="r", now=T0, ttl=TTL, required=1)
    cases: list[tuple[type[KosmosError], ApprovalRequest, str, bool, str, tuple[str, str]]] = [
        (
            UsageError,
            plain,
            "UBOB",
            True,
            "ok",
            (f"{plain.id} was not a break-glass restore", "only break-glass needs a review"),
        ),
        (
            PermissionDenied,
            broken(),
            "UIC",
            True,
            "ok",
            (
                "the incident commander who broke glass cannot review it",
                "another member of the approvers group must review",
            ),
        ),
        (
            MissingRole,
            broken(),
            "UVIEW",
            False,
            "ok",
            (
                "only members of the approvers group may review a break-glass restore",
                "approvers are listed in slack.roles.approvers",
            ),
        ),
    ]
    for error, request, user, role, notes, (message, hint) in cases:
        with pytest.raises(error) as caught:
            review(request, user=user, holds_approver_role=role, notes=notes, now=T0)
        assert said(caught.value) == (message, hint)


def test_a_review_needs_notes_and_names_the_command() -> None:
    request = broken()
    with pytest.raises(UsageError) as caught:
        review(request, user="UBOB", holds_approver_role=True, notes=" ", now=T0)
    command = f"/restore review {request.id} -- <notes>"
    assert said(caught.value) == ("a review needs notes", command)


def test_a_review_is_recorded_once() -> None:
    done = review(broken(), user="UBOB", holds_approver_role=True, notes=" looked ", now=T0)
    assert done.review is not None
    assert (done.review.user, done.review.verdict, done.review.at, done.review.reason) == (
        "UBOB",
        Verdict.REVIEW,
        T0,
        "looked",
    )
    with pytest.raises(ConflictError) as caught:
        review(done, user="UCAROL", holds_approver_role=True, notes="again", now=T0)
    assert said(caught.value) == (f"{done.id} was already reviewed by UBOB", "looked")


def test_reminders_come_every_interval_until_reviewed() -> None:
    request = broken()
    every = timedelta(hours=4)
    second = timedelta(seconds=1)
    assert not reminder_due(request, T0 + every - second, every)
    assert reminder_due(request, T0 + every, every)
    reminded = mark_reminded(request, T0 + every)
    assert reminded.reminded_at == T0 + every
    assert not reminder_due(reminded, T0 + 2 * every - second, every)
    assert reminder_due(reminded, T0 + 2 * every, every)
    done = review(reminded, user="UBOB", holds_approver_role=True, notes="ok", now=T0)
    assert not reminder_due(done, T0 + 10 * every, every)


def test_the_signed_record_names_the_request_its_digest_and_its_times() -> None:
    request = broken(request_id="rr-20261124T0300Z-abcdef")
    record = request.approval
    assert record is not None and record.kind == "break-glass"
    assert (record.request_id, record.digest, record.requester) == (
        "rr-20261124T0300Z-abcdef",
        PLAN.digest(),
        "UIC",
    )
    assert (record.issued_at, record.expires_at) == (T0, T0 + TTL)
    assert (request.requester, request.reason, request.created_at) == ("UIC", "fire", T0)
    assert request.expires_at == T0 + TTL and request.review is None
    assert request.awaiting_review and request.reminded_at is None
    # Each break-glass is its own authorization.
    assert broken().approval != broken().approval


def test_a_break_glass_without_a_reason_is_refused_as_any_restore() -> None:
    with pytest.raises(UsageError) as caught:
        open_break_glass(
            PLAN, commander="UIC", holds_commander_role=True, reason=" ", now=T0, ttl=TTL, key=KEY
        )
    assert said(caught.value) == (
        "a restore needs a reason",
        "/restore <component> <backup|latest> -- <reason>",
    )


def test_a_plain_request_is_never_nagged_for_a_review() -> None:
    plain = open_request(PLAN, requester="UA", reason="r", now=T0, ttl=TTL, required=1)
    assert not reminder_due(plain, T0 + timedelta(days=30), timedelta(hours=1))
