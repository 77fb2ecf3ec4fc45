"""People's answers on a run, and the ``${…}`` lookups, each outcome and refusal in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workers.core.errors import ConflictError, KosmosError, NotFoundError, UsageError
from workers.core.run_start import new_run
from workers.core.runbook import Runbook, StepMode
from workers.core.runbook_run import Awaiting, RunState, StepStatus

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
RUN_ID = "dr-20261124T030000Z-ab12"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_run(steps: list[dict[str, Any]], **extra: Any) -> RunState:
    runbook = Runbook.model_validate({"name": "t", "title": "T", "steps": steps, **extra})
    modes = {s["id"]: StepMode.MANUAL for s in steps if s["kind"] == "manual"}
    return new_run(
        runbook,
        run_id=RUN_ID,
        params={"db": "scratch"},
        started_by="U1",
        now=T0,
        rto=timedelta(hours=4),
        rpo=timedelta(hours=1),
        modes=modes,
        safe={},
    )


def job(step_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "title": step_id,
        "kind": "job",
        "operation": "postgres.restore",
        **extra,
    }


def asking() -> RunState:
    """A run whose only job failed under ``ask``: it waits for a decision."""
    run = make_run([job("a", on_failure="ask")], inputs={"db": {}})
    run.start("a", at(0), "op1")
    assert run.fail("a", at(1), "probe failed") == "ask"
    return run


def said(error: KosmosError) -> tuple[type, str, str | None]:
    return type(error), error.message, error.hint


def test_each_decision_does_what_it_says() -> None:
    retry = asking()
    assert retry.decide("a", "retry", by="U2", note="again", now=at(2)) == "retry"
    state = retry.steps["a"]
    assert (state.status, state.awaiting, state.question, state.executing) == (
        StepStatus.PENDING,
        None,
        None,
        False,
    )
    assert (state.note, state.confirmed_by) == ("again", "U2")
    done = asking()
    assert done.decide("a", "done", by="U2", note=None, now=at(2)) == "done"
    assert done.steps["a"].status == StepStatus.DONE
    assert done.steps["a"].note == "confirmed done by a person"
    failed = asking()
    assert failed.decide("a", "fail", by="U2", note=None, now=at(2)) == "stop"
    assert failed.steps["a"].status == StepStatus.FAILED and failed.stopping


def test_a_decision_that_is_not_one_or_not_awaited_is_refused() -> None:
    run = asking()
    with pytest.raises(UsageError) as caught:
        run.decide("a", "maybe", by="U2", note=None, now=at(2))
    assert said(caught.value) == (
        UsageError,
        "unknown decision 'maybe'",
        "retry, skip, done or fail",
    )
    run.decide("a", "retry", by="U2", note=None, now=at(2))
    run.start("a", at(3), "op2")
    with pytest.raises(ConflictError) as waiting:
        run.decide("a", "retry", by="U2", note=None, now=at(4))
    assert waiting.value.message == "step 'a' is not waiting for a decision"


def test_manual_answers_and_their_refusals() -> None:
    run = make_run([{"id": "m", "title": "m", "kind": "manual"}], inputs={"db": {}})
    run.start("m", at(0))
    with pytest.raises(ConflictError) as not_asked:
        run.decide("m", "retry", by="U2", note=None, now=at(1))
    assert not_asked.value.message == "step 'm' is not waiting for a decision"
    with pytest.raises(UsageError) as unknown:
        run.confirm("m", "later", by="U2", note=None, now=at(1))
    assert said(unknown.value) == (UsageError, "unknown answer 'later'", "done, skip or failed")
    with pytest.raises(UsageError) as bare:
        run.confirm("m", "failed", by="U2", note=" ", now=at(1))
    assert said(bare.value) == (
        UsageError,
        "marking a step failed needs a note",
        "Failed -- <note>",
    )
    assert run.confirm("m", "failed", by="U2", note="broken", now=at(2)) == "stop"
    assert run.steps["m"].status == StepStatus.FAILED and run.steps["m"].awaiting is None
    skipped = make_run([{"id": "m", "title": "m", "kind": "manual"}], inputs={"db": {}})
    skipped.start("m", at(0))
    assert skipped.steps["m"].awaiting == Awaiting.CONFIRMATION
    assert skipped.confirm("m", "skip", by="U2", note="not needed", now=at(1)) == "skipped"
    assert skipped.steps["m"].status == StepStatus.SKIPPED


def test_lookups_of_inputs_the_run_and_step_outputs() -> None:
    run = make_run([job("a")], inputs={"db": {}})
    run.start("a", at(0), "op1")
    run.succeed("a", at(5), outputs={"backup_id": "b1"})
    assert run.lookup("inputs.db") == "scratch"
    assert [run.lookup(f"run.{k}") for k in ("id", "tag", "started_by", "runbook")] == [
        RUN_ID,
        "ab12",
        "U1",
        "t",
    ]
    assert run.lookup("run.started_at") == T0.isoformat()
    assert run.lookup("steps.a.outputs.backup_id") == "b1"
    assert run.resolved({"x": ["${steps.a.outputs.backup_id}", "${inputs.db}"]}) == {
        "x": ["b1", "scratch"]
    }
    with pytest.raises(UsageError) as missing:
        run.lookup("inputs.nope")
    assert missing.value.message == f"input 'nope' was not given to run {RUN_ID}"
    with pytest.raises(NotFoundError) as no_output:
        run.lookup("steps.a.outputs.rows")
    assert said(no_output.value) == (
        NotFoundError,
        "step 'a' did not output 'rows'",
        "its outputs: backup_id",
    )
    with pytest.raises(UsageError) as nonsense:
        run.lookup("inputs.db.more")
    assert nonsense.value.message == "${inputs.db.more} is not a reference"
