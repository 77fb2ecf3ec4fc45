"""Runbook checks: what the models alone cannot see, each problem with its path.

Duplicate ids, unknown dependencies, cycles, references to inputs that are not declared
or to steps that do not come earlier, and time budgets: the file loader turns each
problem's path into the line of the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from pydantic import ConfigDict

from workers.core.model import Model
from workers.core.runbook import (
    INPUT_REF,
    MAX_BUDGET,
    REFERENCE,
    RUN_FIELDS,
    STEP_REF,
    Runbook,
    Step,
    StepKind,
)


class _Model(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Problem(_Model):
    """One thing wrong with a runbook, located by its path inside the document."""

    path: tuple[str | int, ...] = ()
    step: str | None = None
    message: str
    warning: bool = False


def problems(runbook: Runbook, objective: timedelta | None = None) -> list[Problem]:
    """Everything wrong with a structurally valid runbook: ids, graph, references, budgets."""
    found: list[Problem] = []
    found += _duplicate_ids(runbook)
    found += _unknown_dependencies(runbook)
    found += _cycles(runbook)
    found += _bad_references(runbook)
    found += _report_problems(runbook)
    found += _budget_problems(runbook, runbook.rto or objective)
    return found


def _duplicate_ids(runbook: Runbook) -> list[Problem]:
    seen: set[str] = set()
    found = []
    for index, step in enumerate(runbook.steps):
        if step.id in seen:
            found.append(
                Problem(path=("steps", index, "id"), step=step.id, message="duplicate step id")
            )
        seen.add(step.id)
    return found


def _unknown_dependencies(runbook: Runbook) -> list[Problem]:
    ids = set(runbook.ids)
    found = []
    for index, step in enumerate(runbook.steps):
        for position, dep in enumerate(step.depends_on):
            path: tuple[str | int, ...] = ("steps", index, "depends_on", position)
            if dep == step.id:
                found.append(Problem(path=path, step=step.id, message="depends on itself"))
            elif dep not in ids:
                found.append(
                    Problem(path=path, step=step.id, message=f"depends on unknown step {dep!r}")
                )
    return found


def _cycles(runbook: Runbook) -> list[Problem]:
    graph = {step.id: [d for d in step.depends_on if d != step.id] for step in runbook.steps}
    index_of = {step.id: i for i, step in enumerate(runbook.steps)}
    state: dict[str, int] = {}
    found: list[Problem] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for dep in graph.get(node, []):
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                cycle = [*trail[trail.index(dep) :], dep] if dep in trail else [node, dep]
                found.append(
                    Problem(
                        path=("steps", index_of[node], "depends_on"),
                        step=node,
                        message="dependency cycle: " + " -> ".join(cycle),
                    )
                )
            elif dep not in state:
                visit(dep, [*trail, dep])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    return found


def ancestors(runbook: Runbook, step_id: str) -> set[str]:
    """Every step ``step_id`` depends on, directly or not (cycles tolerated)."""
    graph = {step.id: step.depends_on for step in runbook.steps}
    seen: set[str] = set()
    todo = list(graph.get(step_id, ()))
    while todo:
        dep = todo.pop()
        if dep not in seen and dep in graph:
            seen.add(dep)
            todo.extend(graph[dep])
    seen.discard(step_id)
    return seen


def _bad_references(runbook: Runbook) -> list[Problem]:
    found = []
    ids = set(runbook.ids)
    for index, step in enumerate(runbook.steps):
        before = ancestors(runbook, step.id)
        for path, expression in step_references(step):
            message = reference_problem(expression, runbook, before, ids)
            if message:
                found.append(Problem(path=("steps", index, *path), step=step.id, message=message))
    return found


def reference_problem(
    expression: str, runbook: Runbook, before: set[str], ids: set[str]
) -> str | None:
    """Why ``${expression}`` cannot be resolved in a step after ``before``, or None."""
    text = f"${{{expression}}}"
    if match := INPUT_REF.match(expression):
        if match.group(1) not in runbook.inputs:
            return f"{text} names an input that the runbook does not declare"
        return None
    if match := STEP_REF.match(expression):
        ref_step = match.group(1)
        if ref_step not in ids:
            return f"{text} names unknown step {ref_step!r}"
        if ref_step not in before:
            return f"{text} refers to step {ref_step!r}, which this step does not depend on"
        kind = runbook.step(ref_step).kind
        if kind == StepKind.MANUAL:
            return f"{text}: manual step {ref_step!r} has no outputs"
        return None
    if expression.startswith("run.") and expression[4:] in RUN_FIELDS:
        return None
    return (
        f"{text} is not a reference (use ${{inputs.NAME}}, "
        "${steps.ID.outputs.KEY} or ${run.id})"
    )


def step_references(step: Step) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every ``${…}`` expression in a step's parameters, probes, plan and commands."""
    data = step.model_dump(mode="json", exclude={"id", "title", "depends_on", "kind"})
    yield from _walk_references(data, ())


def _walk_references(value: Any, path: tuple[str | int, ...]) -> Iterator[Any]:
    if isinstance(value, str):
        for match in REFERENCE.finditer(value):
            yield path, match.group(1).strip()
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_references(item, (*path, key))
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value):
            yield from _walk_references(item, (*path, position))


def _report_problems(runbook: Runbook) -> list[Problem]:
    found = []
    ids = set(runbook.ids)
    spec = runbook.report
    if spec.recovered_after and spec.recovered_after not in ids:
        found.append(
            Problem(
                path=("report", "recovered_after"),
                message=f"recovered_after names unknown step {spec.recovered_after!r}",
            )
        )
    if spec.restore_point:
        for _, expression in _walk_references(spec.restore_point, ()):
            message = reference_problem(expression, runbook, ids, ids)
            if message:
                found.append(Problem(path=("report", "restore_point"), message=message))
    return found


def _budget_problems(runbook: Runbook, objective: timedelta | None) -> list[Problem]:
    found = []
    for index, step in enumerate(runbook.steps):
        if step.budget > MAX_BUDGET:
            found.append(
                Problem(
                    path=("steps", index, "budget"),
                    step=step.id,
                    message=f"budget {step.budget} is longer than {MAX_BUDGET}",
                )
            )
    # A cycle has no longest chain; the cycle itself is the problem to report.
    if objective is not None and not _cycles(runbook):
        longest = critical_path(runbook)
        if longest > objective:
            found.append(
                Problem(
                    path=("steps",),
                    message=f"the longest chain of budgets ({longest}) exceeds the RTO "
                    f"objective ({objective})",
                    warning=True,
                )
            )
    return found


def critical_path(runbook: Runbook) -> timedelta:
    """The longest sum of budgets along a dependency chain (the planned recovery time)."""
    budgets = {step.id: step.budget for step in runbook.steps}
    memo: dict[str, timedelta] = {}

    def finish(step_id: str, visiting: frozenset[str]) -> timedelta:
        if step_id in memo:
            return memo[step_id]
        deps = [d for d in runbook.step(step_id).depends_on if d in budgets and d not in visiting]
        start = max((finish(d, visiting | {d}) for d in deps), default=timedelta())
        memo[step_id] = start + budgets[step_id]
        return memo[step_id]

    return max(finish(step.id, frozenset({step.id})) for step in runbook.steps)
