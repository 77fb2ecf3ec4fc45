"""Runbook checks: each problem's exact words, the step it names and the path to its line."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.core.runs import job, manual
from workers.core.runbook import Runbook
from workers.core.runbook_check import (
    Problem,
    ancestors,
    critical_path,
    problems,
    reference_problem,
    step_references,
)


def book(*steps: dict[str, Any], **extra: Any) -> Runbook:
    return Runbook.model_validate({"name": "t", "title": "T", "steps": list(steps), **extra})


def test_a_duplicate_id_points_at_the_second_one() -> None:
    assert problems(book(manual("a"), manual("b"), manual("a"))) == [
        Problem(path=("steps", 2, "id"), step="a", message="duplicate step id")
    ]


def test_bad_dependencies_point_at_their_place_in_depends_on() -> None:
    found = problems(book(manual("a"), manual("b", "a", "ghost"), manual("c", "c")))
    assert found == [
        Problem(
            path=("steps", 1, "depends_on", 1), step="b", message="depends on unknown step 'ghost'"
        ),
        Problem(path=("steps", 2, "depends_on", 0), step="c", message="depends on itself"),
    ]


def test_a_cycle_behind_an_unknown_dependency_is_still_found() -> None:
    found = problems(book(manual("a", "ghost", "b"), manual("b", "a")))
    assert [p.message for p in found] == [
        "depends on unknown step 'ghost'",
        "dependency cycle: a -> b -> a",
    ]
    assert found[1].path == ("steps", 1, "depends_on") and found[1].step == "b"


def test_each_bad_reference_in_words_with_its_step_and_path() -> None:
    runbook = book(
        job("pick", params={"backup": "${inputs.missing}"}),
        manual("m"),
        job(
            "restore",
            "pick",
            "m",
            params={"a": "${steps.ghost.outputs.x}", "b": "${steps.late.outputs.x}"},
            commands=["psql -c 'select 1'", "echo ${steps.m.outputs.y}"],
        ),
        job("late", params={"x": "${job.id} and ${run.nope} and ${ run.tag }"}),
    )
    assert problems(runbook) == [
        Problem(
            path=("steps", 0, "params", "backup"),
            step="pick",
            message="${inputs.missing} names an input that the runbook does not declare",
        ),
        Problem(
            path=("steps", 2, "commands", 1),
            step="restore",
            message="${steps.m.outputs.y}: manual step 'm' has no outputs",
        ),
        Problem(
            path=("steps", 2, "params", "a"),
            step="restore",
            message="${steps.ghost.outputs.x} names unknown step 'ghost'",
        ),
        Problem(
            path=("steps", 2, "params", "b"),
            step="restore",
            message="${steps.late.outputs.x} refers to step 'late', "
            "which this step does not depend on",
        ),
        Problem(
            path=("steps", 3, "params", "x"),
            step="late",
            message="${job.id} is not a reference "
            "(use ${inputs.NAME}, ${steps.ID.outputs.KEY} or ${run.id})",
        ),
        Problem(
            path=("steps", 3, "params", "x"),
            step="late",
            message="${run.nope} is not a reference "
            "(use ${inputs.NAME}, ${steps.ID.outputs.KEY} or ${run.id})",
        ),
    ]


def test_every_field_of_the_run_may_be_referred_to() -> None:
    for field in ("id", "tag", "started_by", "started_at", "runbook"):
        assert reference_problem(f"run.{field}", book(manual("a")), set(), {"a"}) is None
    assert problems(book(job("a", params={"db": "kb_${run.tag}", "by": "${run.started_by}"}))) == []


def test_titles_and_dependencies_are_not_parameters() -> None:
    step = book(job("a", title="Restore ${inputs.db}", params={"x": "${inputs.db}"})).steps[0]
    assert list(step_references(step)) == [(("params", "x"), "inputs.db")]
    # A dependency that looks like a reference is an unknown step, said once.
    assert [p.message for p in problems(book(manual("a", "${inputs.x}")))] == [
        "depends on unknown step '${inputs.x}'"
    ]


def test_the_report_must_name_a_known_step_and_good_references() -> None:
    good = book(
        job("pick"),
        job("restore", "pick"),
        report={"recovered_after": "restore", "restore_point": "${steps.pick.outputs.at}"},
    )
    assert problems(good) == []
    bad = book(
        job("pick"),
        manual("m"),
        report={"recovered_after": "ghost", "restore_point": "${steps.m.outputs.at}"},
    )
    assert problems(bad) == [
        Problem(
            path=("report", "recovered_after"),
            message="recovered_after names unknown step 'ghost'",
        ),
        Problem(
            path=("report", "restore_point"),
            message="${steps.m.outputs.at}: manual step 'm' has no outputs",
        ),
    ]
    unknown = book(job("pick"), report={"restore_point": "at ${steps.nope.outputs.at}"})
    assert [(p.path, p.message) for p in problems(unknown)] == [
        (("report", "restore_point"), "${steps.nope.outputs.at} names unknown step 'nope'")
    ]


def test_a_budget_of_exactly_a_day_is_allowed_a_longer_one_is_not() -> None:
    assert problems(book(manual("a", budget="24h"))) == []
    assert problems(book(manual("a"), manual("b", budget="25h"))) == [
        Problem(
            path=("steps", 1, "budget"),
            step="b",
            message="budget 1 day, 1:00:00 is longer than 1 day, 0:00:00",
        )
    ]


def test_a_chain_as_long_as_the_objective_is_fine_a_longer_one_is_warned() -> None:
    chain = book(manual("a", budget="3h"), manual("b", "a", budget="1h"))
    assert problems(chain, objective=timedelta(hours=4)) == []
    assert problems(chain, objective=timedelta(hours=3, minutes=59)) == [
        Problem(
            path=("steps",),
            message="the longest chain of budgets (4:00:00) exceeds the RTO objective (3:59:00)",
            warning=True,
        )
    ]
    # The runbook's own objective wins over the deployment's.
    own = book(manual("a", budget="3h"), manual("b", "a", budget="1h"), rto="5h")
    assert problems(own, objective=timedelta(hours=1)) == []


def test_a_budget_problem_and_the_chain_warning_together() -> None:
    found = problems(book(manual("a", budget="25h")), objective=timedelta(hours=4))
    assert [(p.message, p.warning) for p in found] == [
        ("budget 1 day, 1:00:00 is longer than 1 day, 0:00:00", False),
        (
            "the longest chain of budgets (1 day, 1:00:00) exceeds the RTO objective (4:00:00)",
            True,
        ),
    ]


def test_a_cycle_gets_no_chain_warning() -> None:
    cyclic = book(manual("a", "b", budget="3h"), manual("b", "a", budget="3h"))
    found = problems(cyclic, objective=timedelta(hours=1))
    assert [p.message for p in found] == ["dependency cycle: a -> b -> a"]


def test_ancestors_are_transitive_skip_unknowns_and_tolerate_cycles() -> None:
    runbook = book(manual("a", "c"), manual("b", "a", "ghost"), manual("c", "b"), manual("d", "c"))
    assert ancestors(runbook, "d") == {"a", "b", "c"}
    assert ancestors(runbook, "a") == {"b", "c"}
    assert ancestors(runbook, "ghost") == set()
    assert ancestors(book(manual("x")), "x") == set()


def test_critical_path_follows_long_chains_and_survives_cycles_and_unknowns() -> None:
    chain = book(
        manual("a", budget="1h"),
        manual("b", "a", budget="2h"),
        manual("c", "b", "ghost", budget="30m"),
        manual("d", budget="3h"),
    )
    assert critical_path(chain) == timedelta(hours=3, minutes=30)
    cyclic = book(manual("a", "b", budget="1h"), manual("b", "a", budget="2h"))
    assert critical_path(cyclic) == timedelta(hours=3)
