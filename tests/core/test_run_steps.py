"""One step's duration: none before it starts, so far while it runs, never negative."""

from __future__ import annotations

from tests.core.runs import at
from workers.core.run_steps import StepRun, StepStatus


def test_seconds_before_during_and_after_a_step() -> None:
    assert StepRun().seconds(at(10)) is None
    running = StepRun(status=StepStatus.RUNNING, started_at=at(10))
    assert running.seconds(at(25)) == 15.0
    done = StepRun(status=StepStatus.DONE, started_at=at(10), finished_at=at(12))
    assert done.seconds(at(99)) == 2.0
    assert StepRun(started_at=at(10), finished_at=at(10)).seconds(at(99)) == 0.0
    # A clock that stepped back (another worker's) never gives a negative duration.
    assert StepRun(started_at=at(10), finished_at=at(9.5)).seconds(at(99)) == 0.0
    assert StepRun(started_at=at(10)).seconds(at(10.25)) == 0.25
