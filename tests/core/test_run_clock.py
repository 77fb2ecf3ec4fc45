"""The RTO clock: its levels at their boundaries, and what stops it."""

from __future__ import annotations

from datetime import timedelta

from tests.core.runs import T0, at, job, make_run
from workers.core.run_clock import RtoClock, recovered_at, rto_clock


def test_levels_change_exactly_at_75_and_100_percent() -> None:
    run = make_run([job("a")], rto=timedelta(seconds=400))
    levels = {s: rto_clock(run, at(s)).level for s in (0, 299, 300, 399, 400, 401)}
    assert levels == {
        0: "ok",
        299: "ok",
        300: "warning",
        399: "warning",
        400: "breached",
        401: "breached",
    }
    clock = rto_clock(run, at(300))
    assert clock == RtoClock(
        elapsed=timedelta(seconds=300),
        objective=timedelta(seconds=400),
        level="warning",
        stopped=False,
    )
    assert clock.fraction == 0.75


def test_a_run_without_an_objective_never_warns() -> None:
    run = make_run([job("a")], rto=timedelta(0))
    clock = rto_clock(run, at(86400))
    assert (clock.level, clock.fraction, clock.elapsed) == ("ok", 0.0, timedelta(days=1))


def test_the_clock_stops_when_the_run_ends_without_a_recovery_step() -> None:
    run = make_run([job("a")])
    run.start("a", at(0), "op")
    run.succeed("a", at(90))
    assert run.settle(at(120))
    clock = rto_clock(run, at(7200))
    assert (clock.elapsed, clock.stopped) == (timedelta(seconds=120), True)


def test_only_a_recovery_step_that_succeeded_stops_the_clock() -> None:
    for ending in ("fail", "skip"):
        run = make_run([job("a"), job("b")], report={"recovered_after": "a"})
        run.start("a", at(0), "op")
        if ending == "fail":
            run.fail("a", at(60), "no")
        else:
            run.skip("a", at(60), by="U2", reason="not needed")
        assert run.steps["a"].finished_at == at(60)
        assert recovered_at(run) is None, ending
        clock = rto_clock(run, at(600))
        assert (clock.elapsed, clock.stopped) == (timedelta(seconds=600), False), ending


def test_recovered_at_is_the_end_of_the_recovery_step() -> None:
    run = make_run([job("a"), job("b", "a")], report={"recovered_after": "a"})
    assert recovered_at(run) is None
    run.start("a", at(0), "op")
    assert recovered_at(run) is None
    run.succeed("a", at(42))
    assert recovered_at(run) == at(42)
    assert recovered_at(make_run([job("a")])) is None
    assert rto_clock(run, at(99)).elapsed == at(42) - T0
