"""The run state machine's edges: refusals word for word, what each transition records, gates."""

from __future__ import annotations

import pytest

from tests.core.runs import RUN_ID, at, gate, job, make_run, manual
from workers.core.errors import (
    ConflictError,
    KosmosError,
    NotFoundError,
    PermissionDenied,
    UsageError,
)
from workers.core.runbook import StepMode
from workers.core.runbook_run import (
    Awaiting,
    ProbeResult,
    RunState,
    RunStatus,
    StepStatus,
    crash_question,
)


def said(error: KosmosError) -> tuple[type, str, str | None]:
    return type(error), error.message, error.hint


# -- skip and abort --------------------------------------------------------------------------


def test_skip_refusals_in_words() -> None:
    run = make_run([job("a")])
    with pytest.raises(UsageError) as bare:
        run.skip("a", at(1), by="U2", reason="  ")
    assert said(bare.value) == (UsageError, "skipping a step needs a reason", "Skip -- <reason>")
    run.start("a", at(0), "op")
    run.succeed("a", at(1))
    with pytest.raises(ConflictError) as ended:
        run.skip("a", at(2), by="U2", reason="late")
    assert ended.value.message == "step 'a' is already done"


def test_skip_records_who_why_and_when() -> None:
    run = make_run([job("pending"), manual("waiting")])
    skipped = run.skip("pending", at(5), by="U2", reason="not needed")
    assert skipped is run.steps["pending"]
    assert (skipped.status, skipped.started_at, skipped.finished_at) == (
        StepStatus.SKIPPED,
        at(5),
        at(5),
    )
    assert (skipped.confirmed_by, skipped.note) == ("U2", "not needed")
    run.start("waiting", at(1))
    state = run.skip("waiting", at(7), by=None, reason="done by hand")
    # A step that had started keeps its start: its duration is what it really took.
    assert (state.started_at, state.finished_at, state.seconds(at(99))) == (at(1), at(7), 6.0)
    assert state.awaiting is None and state.question is None and state.confirmed_by is None


def test_abort_refusals_in_words() -> None:
    run = make_run([job("a")])
    with pytest.raises(UsageError) as bare:
        run.abort(by="U1", reason=" ", now=at(1))
    assert said(bare.value) == (UsageError, "an abort needs a reason", "/dr abort -- <reason>")
    assert not run.stopping
    run.start("a", at(0), "op")
    run.succeed("a", at(1))
    assert run.settle(at(1))
    with pytest.raises(ConflictError) as ended:
        run.abort(by="U1", reason="too late", now=at(2))
    assert ended.value.message == f"run {RUN_ID} has already ended (done)"


def test_abort_skips_each_waiting_step_in_the_aborters_name() -> None:
    run = make_run([manual("m"), job("busy")])
    run.start("m", at(0))
    run.start("busy", at(0), "op")
    run.abort(by="U2", reason="false alarm", now=at(30))
    m = run.steps["m"]
    assert (m.status, m.finished_at, m.confirmed_by, m.note) == (
        StepStatus.SKIPPED,
        at(30),
        "U2",
        "run aborted: false alarm",
    )
    # Work in flight is not skipped under its worker's feet.
    assert run.steps["busy"].status == StepStatus.RUNNING
    assert (run.stopping, run.abort_reason, run.aborted_by) == (True, "false alarm", "U2")


# -- settle ----------------------------------------------------------------------------------


def test_settle_waits_while_a_step_runs_and_ends_the_run_once() -> None:
    run = make_run([job("a"), job("b")])
    run.start("a", at(0), "op")
    assert run.fail("a", at(1), "no") == "stop"
    run.start("b", at(0), "op-b")  # started before a failed
    assert run.settle(at(2)) is False
    assert (run.status, run.finished_at) == (RunStatus.RUNNING, None)
    run.succeed("b", at(3))
    assert run.settle(at(4)) is True
    assert (run.status, run.finished_at) == (RunStatus.FAILED, at(4))
    assert run.settle(at(5)) is False
    assert run.finished_at == at(4)


def test_settle_does_not_end_a_run_with_steps_left_to_start() -> None:
    run = make_run([job("a")])
    assert run.settle(at(1)) is False
    assert run.status == RunStatus.RUNNING


# -- begin_execution -------------------------------------------------------------------------


def test_a_job_for_a_step_that_is_not_running_is_stale() -> None:
    run = make_run([job("a"), job("b")], safe={"a": False})
    assert run.begin_execution("ghost", "op") == "stale"
    # Pending: never started, so no op id yet either.
    assert run.begin_execution("a", None) == "stale"
    run.start("a", at(0), "op")
    run.succeed("a", at(1))
    assert run.begin_execution("a", "op") == "stale"
    assert run.steps["a"].executing is False
    run.start("b", at(1), None)
    run.succeed("b", at(2))
    assert run.begin_execution("b", None) == "stale"


def test_a_second_job_of_an_unsafe_step_asks_the_crash_question() -> None:
    run = make_run([job("restore")], safe={"restore": False})
    run.start("restore", at(0), "op")
    assert run.begin_execution("restore", "op") == "run"
    assert run.begin_execution("restore", "op") == "ask"
    state = run.steps["restore"]
    assert state.awaiting == Awaiting.DECISION
    assert state.question == crash_question("restore")
    assert state.question.startswith("step 'restore' was running when its worker stopped")


# -- confirm ---------------------------------------------------------------------------------


def test_confirm_is_only_for_a_step_waiting_for_a_confirmation() -> None:
    run = make_run([job("a")])
    run.start("a", at(0), "op")
    with pytest.raises(ConflictError) as caught:
        run.confirm("a", "done", by="U2", note=None, now=at(1))
    assert caught.value.message == "step 'a' is not waiting for a confirmation"


def test_confirm_done_keeps_the_note_and_what_the_step_recorded() -> None:
    run = make_run([manual("m")])
    run.start("m", at(0))
    run.steps["m"].outputs = {"replicas": {"ns/web": 2}}
    assert run.confirm("m", "done", by="U2", note="checked by hand", now=at(60)) == "done"
    m = run.steps["m"]
    assert (m.status, m.finished_at, m.confirmed_by, m.note) == (
        StepStatus.DONE,
        at(60),
        "U2",
        "checked by hand",
    )
    assert m.outputs == {"replicas": {"ns/web": 2}}


def test_confirm_skip_needs_a_reason_and_records_who() -> None:
    run = make_run([manual("m")])
    run.start("m", at(0))
    with pytest.raises(UsageError) as bare:
        run.confirm("m", "skip", by="U2", note=None, now=at(1))
    assert said(bare.value) == (UsageError, "skipping a step needs a reason", "Skip -- <reason>")
    assert run.confirm("m", "skip", by="U2", note="not needed", now=at(9)) == "skipped"
    m = run.steps["m"]
    assert (m.status, m.finished_at, m.confirmed_by, m.note) == (
        StepStatus.SKIPPED,
        at(9),
        "U2",
        "not needed",
    )


def test_confirm_failed_records_the_failure_and_who_said_so() -> None:
    run = make_run([manual("m")])
    run.start("m", at(0))
    assert run.confirm("m", "failed", by="U2", note="dns broken", now=at(8)) == "stop"
    m = run.steps["m"]
    assert (m.status, m.finished_at, m.confirmed_by, m.error) == (
        StepStatus.FAILED,
        at(8),
        "U2",
        "dns broken",
    )


# -- approvals -------------------------------------------------------------------------------


def test_approve_gate_refusals_in_words() -> None:
    run = make_run(
        [job("restore"), gate("gate"), gate("by-hand")], modes={"by-hand": StepMode.MANUAL}
    )
    run.start("restore", at(0), "op")
    with pytest.raises(ConflictError) as not_gate:
        run.approve_gate("restore", at(1), by="U2", required=2)
    assert not_gate.value.message == "step 'restore' is not an approval step"
    run.start("by-hand", at(0))
    with pytest.raises(ConflictError) as not_waiting:
        run.approve_gate("by-hand", at(1), by="U2", required=2)
    assert not_waiting.value.message == "step 'by-hand' is not waiting for an approval"
    run.start("gate", at(0))
    with pytest.raises(PermissionDenied) as starter:
        run.approve_gate("gate", at(1), by="U1", required=2)
    assert said(starter.value) == (
        PermissionDenied,
        "the person who started the run cannot approve its gate",
        "a second person from the approvers must approve",
    )
    assert run.steps["gate"].approvers == []


def test_an_opened_gate_is_done_with_its_approval_and_approvers() -> None:
    run = make_run([gate("gate")])
    run.start("gate", at(0))
    assert run.approve_gate("gate", at(5), by="U2", required=2) == "waiting"
    assert run.steps["gate"].status == StepStatus.RUNNING
    assert run.approve_gate("gate", at(9), by="U3", required=2) == "done"
    state = run.steps["gate"]
    approval = f"gate-{RUN_ID}-gate-1"
    assert state.outputs == {"approval_id": approval, "approved_by": "U2, U3"}
    assert (state.approval_id, state.confirmed_by, state.finished_at) == (
        approval,
        "U2, U3",
        at(9),
    )
    one = make_run([gate("gate")])
    one.start("gate", at(0))
    assert one.approve_gate("gate", at(1), by="U2", required=1) == "done"


def test_approved_records_the_approval_on_a_gated_job() -> None:
    run = make_run([job("restore", approval=True), job("plain")])
    run.start("restore", at(0), "op")
    run.start("plain", at(0), "op-p")
    with pytest.raises(ConflictError) as caught:
        run.approved("plain", at(1), approval_id="rr-1", by="U2")
    assert caught.value.message == "step 'plain' is not waiting for an approval"
    assert run.approved("restore", at(2), approval_id="rr-1", by="U2") == "run"
    state = run.steps["restore"]
    assert (state.approval_id, state.confirmed_by, state.awaiting, state.status) == (
        "rr-1",
        "U2",
        None,
        StepStatus.RUNNING,
    )


def test_an_approval_step_approved_from_outside_ends_at_that_time() -> None:
    run = make_run([gate("gate")])
    run.start("gate", at(0))
    assert run.approved("gate", at(7), approval_id="rr-2", by="U3") == "done"
    assert run.steps["gate"].finished_at == at(7)


# -- gated jobs: the restore request does the work -------------------------------------------


def test_a_gated_job_waits_for_its_request_then_its_restore_job() -> None:
    run = make_run([job("restore", approval=True)])
    run.start("restore", at(0), "op")
    run.gate_requested("restore", "rr-7")
    assert run.steps["restore"].approval_id == "rr-7"
    run.gate_approved("restore", "op-restore", by="U2")
    state = run.steps["restore"]
    assert (state.awaiting, state.op_id, state.executing, state.confirmed_by) == (
        None,
        "op-restore",
        True,
        "U2",
    )
    assert run.gate_job_done("restore", "op-old", at(5), outputs={"x": 1}) == "stale"
    assert state.status == StepStatus.RUNNING
    assert run.gate_job_done("restore", "op-restore", at(9), outputs={"rows": 3}) == "done"
    assert (state.status, state.finished_at, state.outputs) == (
        StepStatus.DONE,
        at(9),
        {"rows": 3},
    )
    assert run.gate_job_done("restore", "op-restore", at(10), outputs={}) == "stale"
    assert state.finished_at == at(9)


def test_gate_calls_on_a_step_that_is_not_running_are_refused() -> None:
    run = make_run([job("restore", approval=True)])
    with pytest.raises(ConflictError) as requested:
        run.gate_requested("restore", "rr-1")
    assert requested.value.message == "step 'restore' is pending, not running"
    with pytest.raises(ConflictError) as approved:
        run.gate_approved("restore", "op", by="U2")
    assert approved.value.message == "step 'restore' is pending, not running"
    with pytest.raises(NotFoundError):
        run.gate_requested("ghost", "rr-1")


def test_a_refused_gate_applies_the_steps_policy() -> None:
    run = make_run([job("restore", approval=True), job("other")])
    assert run.gate_failed("restore", at(1), "refused", hint=None) == "stale"
    run.start("restore", at(0), "op")
    assert run.gate_failed("restore", at(3), "denied by U2", hint="ask again") == "stop"
    state = run.steps["restore"]
    assert (state.status, state.finished_at, state.error, state.hint, state.awaiting) == (
        StepStatus.FAILED,
        at(3),
        "denied by U2",
        "ask again",
        None,
    )
    assert run.failure == "step 'restore' failed: denied by U2"
    assert run.gate_failed("restore", at(4), "again", hint=None) == "stale"
    asking = make_run([job("restore", approval=True, on_failure="ask")])
    asking.start("restore", at(0), "op")
    assert asking.gate_failed("restore", at(1), "timed out", hint=None) == "ask"
    assert asking.steps["restore"].awaiting == Awaiting.DECISION


# -- lookups ---------------------------------------------------------------------------------


def test_lookups_of_the_wrong_shape_are_not_references() -> None:
    run = make_run([job("a")], inputs={"db": {"default": "x"}})
    for expression in ("steps.a", "run.id.more", "inputs.db.outputs.x", "run", "other.a"):
        with pytest.raises(UsageError) as caught:
            run.lookup(expression)
        assert caught.value.message == f"${{{expression}}} is not a reference"


def test_a_missing_output_names_the_outputs_there_are() -> None:
    run = make_run([job("a"), job("b")])
    for step_id, outputs in (("a", {}), ("b", {"backup_id": "x", "rows": 3})):
        run.start(step_id, at(0), "op")
        run.succeed(step_id, at(1), outputs=outputs)
    with pytest.raises(NotFoundError) as none:
        run.lookup("steps.a.outputs.id")
    assert said(none.value) == (NotFoundError, "step 'a' did not output 'id'", "its outputs: none")
    with pytest.raises(NotFoundError) as some:
        run.lookup("steps.b.outputs.id")
    assert some.value.hint == "its outputs: backup_id, rows"


def test_the_tag_of_a_run_id_without_a_dash_is_the_whole_id() -> None:
    run = make_run([job("a")])
    plain = run.model_copy(update={"run_id": "drill7"})
    assert plain.lookup("run.tag") == "drill7"
    assert run.lookup("run.tag") == "ab12"


# -- requeue and the board -------------------------------------------------------------------


def test_requeue_forgets_the_lost_worker() -> None:
    run = make_run([job("a")])
    run.start("a", at(0), "op")
    assert run.begin_execution("a", "op") == "run"
    run.requeue("a")
    state = run.steps["a"]
    assert (state.status, state.executing, state.op_id) == (StepStatus.PENDING, False, None)
    assert run.next_runnable() == ["a"]


def test_the_board_keeps_its_place() -> None:
    run = make_run([job("a")])
    assert run.chat.channel is None
    run.set_board("C42", "1700000000.000100")
    assert (run.board_ts, run.chat.channel, run.chat.source) == ("1700000000.000100", "C42", "cli")


# -- reading a step, and the state a step must be in -----------------------------------------


def test_an_unknown_step_is_not_found_naming_the_steps_there_are() -> None:
    run = make_run([job("pick"), job("restore", "pick")])
    with pytest.raises(NotFoundError) as caught:
        run.step_run("ghost")
    assert said(caught.value) == (
        NotFoundError,
        f"run {RUN_ID} has no step 'ghost'",
        "steps: pick, restore",
    )
    assert run.step_run("pick") is run.steps["pick"]


def test_a_step_in_the_wrong_state_says_which_and_where_to_look() -> None:
    run = make_run([job("a")])
    with pytest.raises(ConflictError) as caught:
        run.succeed("a", at(1))
    assert said(caught.value) == (
        ConflictError,
        "step 'a' is pending, not running",
        "see /dr status",
    )


# -- start -----------------------------------------------------------------------------------


def test_a_restart_begins_a_clean_attempt() -> None:
    run = make_run([job("a", on_failure="retry", retries=1)])
    run.start("a", at(0), "op1")
    assert run.begin_execution("a", "op1") == "run"
    assert run.fail("a", at(5), "flaky", hint="try again") == "retry"
    state = run.start("a", at(8), "op2")
    assert (state.started_at, state.attempt_at, state.attempts, state.op_id) == (
        at(0),
        at(8),
        2,
        "op2",
    )
    assert state.error is None and state.hint is None and state.executing is False
    assert state.awaiting is None


def test_only_approval_steps_and_gated_jobs_wait_for_an_approval() -> None:
    check = {
        "id": "c",
        "title": "c",
        "kind": "check",
        "probes": [{"type": "tcp", "host": "127.0.0.1", "port": 5432}],
    }
    run = make_run([check, job("plain"), job("gated", approval=True), gate("g")])
    for step_id in ("c", "plain", "gated", "g"):
        run.start(step_id, at(0), f"op-{step_id}")
    assert {sid: s.awaiting for sid, s in run.steps.items()} == {
        "c": None,
        "plain": None,
        "gated": Awaiting.APPROVAL,
        "g": Awaiting.APPROVAL,
    }


def test_each_attempt_of_a_gated_job_needs_its_own_approval() -> None:
    run = make_run([job("restore", approval=True, on_failure="retry", retries=1)])
    run.start("restore", at(0), "op1")
    run.approved("restore", at(1), approval_id="rr-1", by="U2")
    assert run.fail("restore", at(2), "flaky") == "retry"
    state = run.start("restore", at(3), "op2")
    assert (state.awaiting, state.approval_id) == (Awaiting.APPROVAL, None)


# -- succeed and fail ------------------------------------------------------------------------


def test_succeed_records_probes_and_clears_what_was_pending() -> None:
    run = make_run([job("a", on_failure="ask"), job("b")])
    run.start("a", at(0), "op")
    probe = ProbeResult(label="db up", ok=False, detail="refused")
    assert run.fail("a", at(1), "probe failed", hint="look", probes=[probe]) == "ask"
    state = run.succeed("a", at(4))
    assert state.probes == [probe]
    assert (state.awaiting, state.question, state.error, state.hint) == (None, None, None, None)
    passed = ProbeResult(label="db up", ok=True, seconds=0.5)
    run.start("b", at(0), "op-b")
    assert run.succeed("b", at(2), probes=[passed]).probes == [passed]


def test_a_failure_keeps_who_answered_before_unless_someone_says_otherwise() -> None:
    run = make_run([job("restore", approval=True), job("other", approval=True)])
    run.start("restore", at(0), "op")
    run.approved("restore", at(1), approval_id="rr-1", by="U2")
    assert run.fail("restore", at(5), "disk full") == "stop"
    state = run.steps["restore"]
    assert (state.confirmed_by, state.finished_at) == ("U2", at(5))
    run.start("other", at(0), "op-o")
    run.approved("other", at(1), approval_id="rr-2", by="U2")
    run.fail("other", at(6), "gave up", by="U3")
    assert run.steps["other"].confirmed_by == "U3"


def test_a_retried_step_drops_its_worker_and_its_question() -> None:
    run = make_run([job("a", on_failure="retry")])
    run.start("a", at(0), "op")
    assert run.begin_execution("a", "op") == "run"
    assert run.fail("a", at(1), "flaky") == "retry"
    state = run.steps["a"]
    assert state.executing is False and state.awaiting is None
    assert (state.status, state.error) == (StepStatus.PENDING, "flaky")


def test_the_first_failure_is_the_runs_failure() -> None:
    run = make_run([job("a"), job("b")])
    run.start("a", at(0), "op-a")
    run.start("b", at(0), "op-b")
    run.fail("a", at(1), "first")
    run.fail("b", at(2), "second")
    assert run.failure == "step 'a' failed: first"


# -- decide ----------------------------------------------------------------------------------


def test_decisions_after_a_crash_record_who_and_when() -> None:
    def asking(step_id: str = "restore") -> RunState:
        run = make_run([job(step_id)], safe={step_id: False})
        run.start(step_id, at(0), "op")
        assert run.begin_execution(step_id, "op") == "run"
        assert run.begin_execution(step_id, "op") == "ask"
        return run

    skipped = asking()
    assert skipped.decide("restore", "skip", by="U2", note="left nothing", now=at(5)) == "skipped"
    assert (skipped.steps["restore"].finished_at, skipped.steps["restore"].confirmed_by) == (
        at(5),
        "U2",
    )
    done = asking()
    assert done.decide("restore", "done", by="U3", note=None, now=at(6)) == "done"
    state = done.steps["restore"]
    assert (state.finished_at, state.confirmed_by, state.note) == (
        at(6),
        "U3",
        "confirmed done by a person",
    )
    failed = asking()
    assert failed.decide("restore", "fail", by="U2", note=None, now=at(7)) == "stop"
    assert failed.steps["restore"].finished_at == at(7)
    # The crash left no error message of its own.
    assert failed.failure == "step 'restore' failed: no detail"
