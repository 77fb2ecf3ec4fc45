"""The run state machine: ordering, policies, people's answers, abort, RTO clock, resume."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.core.runs import at, job, make_run, manual
from workers.core.errors import ConflictError, PermissionDenied, UsageError
from workers.core.run_clock import rto_clock
from workers.core.run_resume import resume_plan
from workers.core.runbook import StepMode
from workers.core.runbook_run import Awaiting, RunState, RunStatus, StepStatus


def test_steps_run_in_dependency_order_and_the_run_ends_done() -> None:
    run = make_run([job("a"), job("b", "a"), job("c", "a"), job("d", "b", "c")])
    assert run.next_runnable() == ["a"]
    run.start("a", at(0), "op-a")
    assert run.next_runnable() == []
    run.succeed("a", at(5), outputs={"backup_id": "x"})
    assert run.next_runnable() == ["b", "c"]
    for step_id in ("b", "c"):
        run.start(step_id, at(5), f"op-{step_id}")
        run.succeed(step_id, at(9))
    run.start("d", at(9), "op-d")
    run.succeed("d", at(12))
    assert run.settle(at(12)) is True
    assert run.status == RunStatus.DONE
    assert run.steps["a"].seconds(at(99)) == 5
    assert run.lookup("steps.a.outputs.backup_id") == "x"


def test_inputs_need_values_unknown_ones_are_refused_and_defaults_resolve() -> None:
    steps = [job("a")]
    inputs = {"db": {"default": "scratch_${run.tag}"}, "need": {}}
    with pytest.raises(UsageError, match="needs --param need"):
        make_run(steps, inputs=inputs)
    with pytest.raises(UsageError, match="no parameter 'oops'"):
        make_run(steps, inputs=inputs, params={"need": "1", "oops": "2"})
    run = make_run(steps, inputs=inputs, params={"need": "1"})
    assert run.inputs == {"db": "scratch_ab12", "need": "1"}


def test_stop_policy_stops_the_run_but_always_steps_still_run() -> None:
    run = make_run([job("a"), job("b", "a"), job("teardown", "b", always=True)])
    run.start("a", at(0), "op")
    assert run.fail("a", at(3), "disk full") == "stop"
    assert run.stopping and run.failure == "step 'a' failed: disk full"
    # b will never run, so it no longer holds back the teardown that depends on it.
    assert run.next_runnable() == ["teardown"]
    run.start("teardown", at(3), "op-t")
    run.succeed("teardown", at(4))
    assert run.settle(at(4))
    assert run.status == RunStatus.FAILED
    assert run.steps["b"].status == StepStatus.SKIPPED and run.steps["b"].note == "not reached"


def test_retry_policy_retries_then_stops() -> None:
    run = make_run([job("a", on_failure="retry", retries=1)])
    run.start("a", at(0), "op1")
    assert run.fail("a", at(1), "flaky") == "retry"
    assert run.steps["a"].status == StepStatus.PENDING
    run.start("a", at(1), "op2")
    assert run.steps["a"].attempts == 2
    assert run.fail("a", at(2), "flaky again") == "stop"


def test_a_transient_fault_is_retried_even_under_stop() -> None:
    run = make_run([job("a")])
    run.start("a", at(0), "op1")
    assert run.fail("a", at(1), "storage unreachable", transient=True) == "retry"


def test_ask_policy_waits_for_a_decision() -> None:
    run = make_run([job("a", on_failure="ask"), job("b", "a")])
    run.start("a", at(0), "op1")
    assert run.fail("a", at(1), "probe failed") == "ask"
    state = run.steps["a"]
    assert state.awaiting == Awaiting.DECISION and "Retry, skip it, or abort" in str(state.question)
    with pytest.raises(UsageError):
        run.decide("a", "skip", by="U2", note="", now=at(2))
    assert run.decide("a", "skip", by="U2", note="known flaky", now=at(2)) == "skipped"
    assert run.next_runnable() == ["b"]


def test_manual_step_answers_need_reasons_and_record_who() -> None:
    run = make_run([manual("m"), manual("n", "m")], modes={"m": StepMode.MANUAL})
    run.start("m", at(0))
    assert run.steps["m"].awaiting == Awaiting.CONFIRMATION
    with pytest.raises(UsageError, match="needs a reason"):
        run.confirm("m", "skip", by="U2", note=" ", now=at(1))
    with pytest.raises(UsageError, match="needs a note"):
        run.confirm("m", "failed", by="U2", note=None, now=at(1))
    assert run.confirm("m", "done", by="U2", note=None, now=at(60)) == "done"
    assert run.steps["m"].confirmed_by == "U2"
    with pytest.raises(ConflictError):
        run.confirm("m", "done", by="U3", note=None, now=at(61))


def test_manual_failure_applies_the_steps_policy() -> None:
    run = make_run([manual("m")], modes={"m": StepMode.MANUAL})
    run.start("m", at(0))
    assert run.confirm("m", "failed", by="U2", note="dns broken", now=at(5)) == "stop"
    assert run.steps["m"].status == StepStatus.FAILED
    assert run.failure == "step 'm' failed: dns broken"


def test_abort_skips_waiting_steps_and_lets_teardown_run() -> None:
    run = make_run(
        [manual("m"), job("next", "m"), job("teardown", "m", always=True)],
        modes={"m": StepMode.MANUAL},
    )
    run.start("m", at(0))
    with pytest.raises(UsageError):
        run.abort(by="U1", reason="", now=at(1))
    run.abort(by="U1", reason="false alarm", now=at(1))
    assert run.steps["m"].status == StepStatus.SKIPPED
    assert run.next_runnable() == ["teardown"]
    run.start("teardown", at(1), "op")
    run.succeed("teardown", at(2))
    assert run.settle(at(2)) and run.status == RunStatus.ABORTED


def test_teardown_waits_for_work_in_flight_after_a_failure_or_an_abort() -> None:
    steps = [job("pick"), job("restore", "pick"), job("check", "pick")]
    run = make_run([*steps, job("down", "check", always=True)])
    run.start("pick", at(0), "op-p")
    run.succeed("pick", at(1))
    run.start("restore", at(1), "op-r")
    run.start("check", at(1), "op-c")
    assert run.fail("check", at(2), "no") == "stop"
    # The restore still works: tearing down now would race whatever it is creating.
    assert run.next_runnable() == []
    run.succeed("restore", at(3))
    assert run.next_runnable() == ["down"]
    aborted = make_run([job("restore"), job("down", "restore", always=True)])
    aborted.start("restore", at(0), "op-r")
    aborted.abort(by="U1", reason="stop", now=at(1))
    assert aborted.next_runnable() == []
    assert aborted.fail("restore", at(2), "killed") == "stop"
    assert aborted.next_runnable() == ["down"]


def test_rto_clock_warns_at_75_percent_and_stops_at_recovery() -> None:
    run = make_run([job("a"), job("b", "a")], report={"recovered_after": "a"})
    assert rto_clock(run, at(3600)).level == "ok"
    assert rto_clock(run, at(3 * 3600)).level == "warning"
    assert rto_clock(run, at(4 * 3600)).level == "breached"
    run.start("a", at(0), "op")
    run.succeed("a", at(600))
    clock = rto_clock(run, at(5 * 3600))
    assert clock.elapsed == timedelta(seconds=600) and clock.stopped


def test_resume_requeues_safe_or_unstarted_steps_and_asks_for_unsafe_ones() -> None:
    run = make_run(
        [job("safe"), job("unsafe"), job("queued"), job("alive"), manual("m")],
        modes={"m": StepMode.MANUAL},
        safe={"safe": True, "unsafe": False, "queued": False, "alive": False},
    )
    for step_id in ("safe", "unsafe", "queued", "alive"):
        run.start(step_id, at(0), f"op-{step_id}")
    run.start("m", at(0))
    for step_id in ("safe", "unsafe", "alive"):
        assert run.begin_execution(step_id, f"op-{step_id}") == "run"
    actions = {a.step: a.action for a in resume_plan(run, alive={"alive"})}
    assert actions == {
        "safe": "requeue",
        "unsafe": "ask",
        "queued": "requeue",
        "alive": "keep",
        "m": "repost",
    }
    assert run.steps["unsafe"].awaiting == Awaiting.DECISION
    assert "not safe to repeat" in str(run.steps["unsafe"].question)
    assert run.steps["safe"].status == StepStatus.PENDING
    # A person checked what the crash left and retries it.
    assert run.decide("unsafe", "retry", by="U2", note=None, now=at(9)) == "retry"


def test_a_repeated_job_of_an_unsafe_step_asks_instead_of_running_twice() -> None:
    run = make_run([job("restore")], safe={"restore": False})
    run.start("restore", at(0), "op1")
    assert run.begin_execution("restore", "op1") == "run"
    # RQ hands the same job to a new worker after the first one died mid-work.
    assert run.begin_execution("restore", "op1") == "ask"
    assert run.begin_execution("restore", "op-other") == "stale"


def test_approval_gate_on_a_job_and_an_approval_step() -> None:
    run = make_run(
        [job("restore", approval=True), {"id": "gate", "title": "g", "kind": "approval"}]
    )
    run.start("restore", at(0), "op")
    run.start("gate", at(0))
    assert run.steps["restore"].awaiting == Awaiting.APPROVAL
    assert run.begin_execution("restore", "op") == "stale"
    assert run.approved("restore", at(1), approval_id="rr-1", by="U2") == "run"
    assert run.begin_execution("restore", "op") == "run"
    assert run.approved("gate", at(1), approval_id="rr-2", by="U3") == "done"
    assert run.steps["gate"].outputs == {"approval_id": "rr-2", "approved_by": "U3"}


def test_state_round_trips_through_json() -> None:
    run = make_run(
        [
            job("a", params={"x": "${inputs.x}"}),
            {
                "id": "c",
                "title": "c",
                "kind": "check",
                "probes": [{"type": "sql", "query": "select 1", "expect": 1}],
            },
        ],
        inputs={"x": {"default": "1"}},
    )
    run.start("a", at(0), "op")
    again = RunState.model_validate_json(run.model_dump_json())
    assert again == run


def test_an_approval_step_needs_other_people_than_the_starter() -> None:
    run = make_run([{"id": "gate", "title": "g", "kind": "approval"}, job("go", "gate")])
    run.start("gate", at(0))
    with pytest.raises(PermissionDenied, match="cannot approve"):
        run.approve_gate("gate", at(1), by="U1", required=2)
    assert run.approve_gate("gate", at(1), by="U2", required=2) == "waiting"
    with pytest.raises(ConflictError, match="already approved"):
        run.approve_gate("gate", at(2), by="U2", required=2)
    assert run.approve_gate("gate", at(3), by="U3", required=2) == "done"
    assert run.steps["gate"].outputs["approved_by"] == "U2, U3"
    assert run.next_runnable() == ["go"]
