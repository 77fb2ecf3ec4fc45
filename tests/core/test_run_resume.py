"""Resuming after a lost worker: each running step's action and the reason shown for it."""

from __future__ import annotations

from tests.core.runs import at, job, make_run, manual
from workers.core.run_resume import ResumeAction, resume_plan
from workers.core.runbook_run import Awaiting, StepStatus, crash_question


def test_each_action_comes_with_its_reason_in_words() -> None:
    run = make_run(
        [job("lost"), job("unsafe"), job("alive"), manual("m")],
        safe={"unsafe": False},
    )
    for step_id in ("lost", "unsafe", "alive"):
        run.start(step_id, at(0), f"op-{step_id}")
        assert run.begin_execution(step_id, f"op-{step_id}") == "run"
    run.start("m", at(0))
    assert resume_plan(run, alive={"alive"}) == [
        ResumeAction(step="lost", action="requeue", reason="its worker was lost"),
        ResumeAction(step="unsafe", action="ask", reason="not safe to repeat"),
        ResumeAction(step="alive", action="keep", reason="still running"),
        ResumeAction(step="m", action="repost", reason="waiting"),
    ]
    assert run.steps["unsafe"].awaiting == Awaiting.DECISION
    assert run.steps["unsafe"].question == crash_question("unsafe")
    assert run.steps["unsafe"].question == (
        "step 'unsafe' was running when its worker stopped and is not safe to repeat. "
        "Check what it left behind, then retry it, mark it done, skip it, or fail the run."
    )
    lost = run.steps["lost"]
    assert (lost.status, lost.executing, lost.op_id) == (StepStatus.PENDING, False, None)
    assert run.steps["alive"].status == StepStatus.RUNNING


def test_nothing_running_means_nothing_to_do() -> None:
    run = make_run([job("a")])
    assert resume_plan(run, alive=set()) == []
    assert run.steps["a"].status == StepStatus.PENDING
