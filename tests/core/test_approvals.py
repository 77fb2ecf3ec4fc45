"""The approval rules, the plan digest and the signatures, without any service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from workers.core.approvals import (
    Approval,
    ApprovalRequest,
    MissingRole,
    RequestState,
    Verdict,
    authorize,
    consume,
    decide,
    expire_if_due,
    open_request,
    refuse,
    signature_valid,
)
from workers.core.break_glass import mark_reminded, open_break_glass, reminder_due, review
from workers.core.errors import ConflictError, PermissionDenied, UsageError
from workers.core.operations import RestoreParams
from workers.core.restore_plan import (
    RestorePlan,
    check_plan,
    has_password,
    job_params,
    lost_in_job,
    plan_from_params,
    redact_target,
    targets_live,
)

KEY = b"k" * 32
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
TTL = timedelta(minutes=30)
PLAN = RestorePlan(component="postgres", backup_id="postgres-20261124T0200Z-7f3a", target="app_r")


def pending(required: int = 1) -> ApprovalRequest:
    return open_request(
        PLAN, requester="UALICE", reason="drill", now=T0, ttl=TTL, required=required
    )


def approve(request: ApprovalRequest, user: str, *, role: bool = True, at: datetime = T0):
    return decide(
        request,
        user=user,
        verdict=Verdict.APPROVE,
        holds_approver_role=role,
        now=at + timedelta(minutes=1),
        key=KEY,
        ttl=TTL,
    )


def test_digest_is_canonical_and_covers_every_field() -> None:
    same = RestorePlan.model_validate(PLAN.model_dump(mode="json"))
    assert same.digest() == PLAN.digest()
    for change in (
        {"backup_id": "postgres-20261124T0100Z-0000"},
        {"target": "app_other"},
        {"database": "app"},
        {"in_place": True},
        {"point": T0},
        {"with_globals": True},
    ):
        assert PLAN.model_copy(update=change).digest() != PLAN.digest(), change


def test_request_needs_a_reason() -> None:
    with pytest.raises(UsageError, match="reason"):
        open_request(PLAN, requester="UALICE", reason="  ", now=T0, ttl=TTL, required=1)


def test_second_person_approves_and_the_approval_is_signed_over_the_plan() -> None:
    moved = approve(pending(), "UBOB")
    assert moved.error is None
    request = moved.request
    assert request.state == RequestState.APPROVED
    assert request.approval is not None
    assert request.approval.digest == PLAN.digest()
    assert request.approval.approvers == ("UBOB",)
    assert signature_valid(request.approval, KEY)
    assert not signature_valid(request.approval, b"another key")


def test_self_approval_is_refused_and_changes_nothing() -> None:
    moved = approve(pending(), "UALICE")
    assert isinstance(moved.error, PermissionDenied)
    assert "you asked for this restore" in moved.error.message
    assert not moved.changed and moved.request.state == RequestState.PENDING


def test_non_approver_is_refused_as_a_role_refusal() -> None:
    moved = approve(pending(), "UCAROL", role=False)
    assert isinstance(moved.error, MissingRole)
    assert moved.request.state == RequestState.PENDING


def test_expired_request_is_refused_and_marked_expired() -> None:
    moved = approve(pending(), "UBOB", at=T0 + TTL)
    assert isinstance(moved.error, PermissionDenied) and "expired" in moved.error.message
    assert moved.changed and moved.request.state == RequestState.EXPIRED
    assert expire_if_due(pending(), T0 + TTL - timedelta(seconds=1)).state == RequestState.PENDING


def test_decided_request_refuses_further_clicks() -> None:
    approved = approve(pending(), "UBOB").request
    again = approve(approved, "UDAVE")
    assert isinstance(again.error, ConflictError) and "already approved" in again.error.message
    assert again.request == approved


def test_two_approvers_required_counts_distinct_people() -> None:
    first = approve(pending(required=2), "UBOB").request
    assert first.state == RequestState.PENDING
    twice = approve(first, "UBOB")
    assert isinstance(twice.error, ConflictError)
    second = approve(first, "UDAVE").request
    assert second.state == RequestState.APPROVED
    assert second.approval is not None and second.approval.approvers == ("UBOB", "UDAVE")


def test_denial_needs_a_reason_and_closes_the_request() -> None:
    def deny(reason: str, user: str = "UBOB", role: bool = True):
        return decide(
            pending(),
            user=user,
            verdict=Verdict.DENY,
            holds_approver_role=role,
            now=T0,
            key=KEY,
            ttl=TTL,
            reason=reason,
        )

    assert isinstance(deny("").error, UsageError)
    assert isinstance(deny("no", user="UCAROL", role=False).error, MissingRole)
    denied = deny("wrong backup").request
    assert denied.state == RequestState.DENIED
    assert denied.denial is not None and denied.denial.reason == "wrong backup"
    withdrawn = deny("my mistake", user="UALICE", role=False).request
    assert withdrawn.state == RequestState.DENIED


def test_worker_check_accepts_the_exact_plan_once() -> None:
    request = approve(pending(), "UBOB").request
    record = authorize(request, key=KEY, plan=PLAN, now=T0 + timedelta(minutes=5))
    used = consume(request, op_id="op-1", now=T0)
    with pytest.raises(PermissionDenied, match="already used"):
        authorize(used, key=KEY, plan=PLAN, now=T0)
    assert record.approval_id.startswith("ap-")


@pytest.mark.parametrize(
    "change", [{"backup_id": "postgres-20261124T0100Z-0000"}, {"target": "app"}]
)
def test_worker_check_refuses_a_tampered_plan(change: dict[str, str]) -> None:
    request = approve(pending(), "UBOB").request
    with pytest.raises(PermissionDenied, match="does not match"):
        authorize(request, key=KEY, plan=PLAN.model_copy(update=change), now=T0)


def test_a_mismatch_kosmos_backup_made_itself_says_so_plainly() -> None:
    # A port belongs to a new instance restored from a base backup: a dump's restore job
    # has no such parameter, so the worker's plan lacks it and differs from the approved one.
    odd = PLAN.model_copy(update={"port": 5433})
    assert lost_in_job(odd) == ["port"] and lost_in_job(PLAN) == []
    request = open_request(odd, requester="UALICE", reason="drill", now=T0, ttl=TTL, required=1)
    approved = approve(request, "UBOB").request
    job = plan_from_params("postgres", job_params(odd))
    with pytest.raises(PermissionDenied) as caught:
        authorize(approved, key=KEY, plan=job, now=T0)
    message = caught.value.message
    assert "its port does not reach the restore job" in message
    assert "kosmos-backup's own doing; nobody changed the request" in message
    assert "report this as a bug" in caught.value.hint
    # A job that was changed is told apart, with the field that differs.
    params = job_params(odd)
    options = params.options.model_copy(update={"target_database": "app"})
    changed = plan_from_params("postgres", params.model_copy(update={"options": options}))
    with pytest.raises(PermissionDenied) as caught:
        authorize(approved, key=KEY, plan=changed, now=T0)
    assert "does not match what was approved" in caught.value.message
    assert "target, port differ" in caught.value.message
    assert "own doing" not in caught.value.message


def test_worker_check_refuses_forged_expired_and_pending() -> None:
    request = approve(pending(), "UBOB").request
    assert request.approval is not None
    forged = request.model_copy(
        update={"approval": request.approval.model_copy(update={"approvers": ("UALICE",)})}
    )
    with pytest.raises(PermissionDenied, match="signature"):
        authorize(forged, key=KEY, plan=PLAN, now=T0)
    with pytest.raises(PermissionDenied, match="signature"):
        authorize(request, key=b"not the key", plan=PLAN, now=T0)
    with pytest.raises(PermissionDenied, match="expired"):
        authorize(request, key=KEY, plan=PLAN, now=T0 + timedelta(minutes=1) + TTL)
    with pytest.raises(PermissionDenied, match="not approved"):
        authorize(pending(), key=KEY, plan=PLAN, now=T0)
    burned = refuse(request, note="tampered", now=T0)
    with pytest.raises(PermissionDenied, match="refused"):
        authorize(burned, key=KEY, plan=PLAN, now=T0)


def test_a_refused_job_burns_an_approved_request_but_never_a_pending_one() -> None:
    waiting = pending()
    assert refuse(waiting, note="forged job", now=T0) is waiting
    burned = refuse(approve(waiting, "UBOB").request, note="tampered", now=T0)
    assert burned.state == RequestState.REFUSED and burned.note == "tampered"
    assert refuse(burned, note="again", now=T0) is burned


def test_break_glass_is_its_own_signed_record_for_commanders_only() -> None:
    with pytest.raises(MissingRole):
        open_break_glass(
            PLAN,
            commander="UERIN",
            holds_commander_role=False,
            reason="db gone",
            now=T0,
            ttl=TTL,
            key=KEY,
        )
    request = open_break_glass(
        PLAN,
        commander="UERIN",
        holds_commander_role=True,
        reason="db gone",
        now=T0,
        ttl=TTL,
        key=KEY,
    )
    assert request.state == RequestState.APPROVED and request.awaiting_review
    assert request.approval is not None and request.approval.kind == "break-glass"
    assert authorize(request, key=KEY, plan=PLAN, now=T0).kind == "break-glass"
    # The same signature on a two-person record with the same fields does not verify.
    shared = request.approval.model_dump(exclude={"kind", "commander", "reason"})
    relabelled = Approval.model_validate({**shared, "approvers": ("UERIN",)})
    assert not signature_valid(relabelled, KEY)


def test_review_by_another_approver_stops_the_reminders() -> None:
    request = open_break_glass(
        PLAN,
        commander="UERIN",
        holds_commander_role=True,
        reason="db gone",
        now=T0,
        ttl=TTL,
        key=KEY,
    )
    hour = timedelta(hours=1)
    assert not reminder_due(request, T0 + hour / 2, hour)
    assert reminder_due(request, T0 + hour, hour)
    nagged = mark_reminded(request, T0 + hour)
    assert not reminder_due(nagged, T0 + hour + hour / 2, hour)
    with pytest.raises(PermissionDenied, match="cannot review"):
        review(nagged, user="UERIN", holds_approver_role=True, notes="fine", now=T0)
    with pytest.raises(MissingRole):
        review(nagged, user="UCAROL", holds_approver_role=False, notes="fine", now=T0)
    with pytest.raises(UsageError):
        review(nagged, user="UBOB", holds_approver_role=True, notes=" ", now=T0)
    done = review(nagged, user="UBOB", holds_approver_role=True, notes="justified", now=T0)
    assert not done.awaiting_review and not reminder_due(done, T0 + 10 * hour, hour)
    with pytest.raises(ConflictError):
        review(done, user="UDAVE", holds_approver_role=True, notes="again", now=T0)


def test_job_params_round_trip_and_extra_params_are_refused() -> None:
    for plan in (
        PLAN,
        PLAN.model_copy(update={"target": "host=10.0.0.9 dbname=app", "database": "app"}),
        PLAN.model_copy(update={"base": True, "target": "/srv/pg-r", "point": T0, "port": 5499}),
    ):
        assert plan_from_params("postgres", job_params(plan)) == plan
    wire = job_params(PLAN).model_dump(mode="json")
    with pytest.raises(ValidationError, match="drop_first"):
        RestoreParams.model_validate({**wire, "options": {**wire["options"], "drop_first": True}})
    with pytest.raises(ValidationError, match="drop_first"):
        RestoreParams.model_validate({**wire, "drop_first": True})
    with pytest.raises(PermissionDenied, match="no approval covers: target_database"):
        plan_from_params("postgres", _with_options(job_params(PLAN), target_dsn="dbname=other"))
    tampered = plan_from_params("postgres", _with_options(job_params(PLAN), in_place=True))
    assert tampered.digest() != PLAN.digest()
    with pytest.raises(PermissionDenied, match="describe no plan"):
        plan_from_params("postgres", RestoreParams(backup="x"))


def _with_options(params: RestoreParams, **changes: object) -> RestoreParams:
    options = params.options.model_copy(update=changes)
    return params.model_copy(update={"options": options})


def test_live_source_and_window_checks() -> None:
    source = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    live = {"app", "postgres"}
    assert targets_live("app", source=source, live_databases=live)
    assert not targets_live("app_restored", source=source, live_databases=live)
    assert targets_live("postgresql://u@localhost:5432/app", source=source, live_databases=live)
    assert not targets_live("host=10.1.1.1 dbname=app", source=source, live_databases=live)
    with pytest.raises(UsageError, match="live source"):
        check_plan(PLAN, live=True, window=None)
    check_plan(PLAN.model_copy(update={"in_place": True}), live=True, window=None)
    with pytest.raises(UsageError, match="cannot be restored to a chosen time"):
        check_plan(PLAN.model_copy(update={"point": T0}), live=False, window=None)
    window = (T0 - timedelta(hours=2), T0)
    check_plan(
        PLAN.model_copy(update={"point": T0 - timedelta(hours=1)}), live=False, window=window
    )
    with pytest.raises(UsageError, match="outside the recoverable window"):
        check_plan(
            PLAN.model_copy(update={"point": T0 + timedelta(seconds=1)}), live=False, window=window
        )


def test_targets_never_show_a_password() -> None:
    assert has_password("host=db password=hunter2 dbname=app")
    assert has_password("postgresql://u:hunter2@db/app")
    assert not has_password("postgresql://u@db:5432/app")
    assert "hunter2" not in redact_target("host=db password='hunter2' dbname=app user=u")
    assert redact_target("host=db port=5433 dbname=app user=u") == "u@db:5433/app"
