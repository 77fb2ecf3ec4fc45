"""Runbook models: kinds, references, graph problems, budgets, automation modes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from workers.core.runbook import CheckStep, JobStep, Runbook, StepMode, resolve, step_mode
from workers.core.runbook_check import critical_path, problems


def book(*steps: dict[str, Any], **extra: Any) -> Runbook:
    return Runbook.model_validate({"name": "t", "title": "T", "steps": list(steps), **extra})


def manual(step_id: str, *deps: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "title": step_id, "kind": "manual", "depends_on": list(deps), **extra}


def job(step_id: str, *deps: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "title": step_id,
        "kind": "job",
        "operation": "postgres.restore",
        "depends_on": list(deps),
        **extra,
    }


def messages(runbook: Runbook) -> list[str]:
    return [p.message for p in problems(runbook)]


def test_kinds_parse_into_their_models() -> None:
    runbook = book(
        manual("a"),
        job("b", "a", params={"backup": "latest"}),
        {
            "id": "c",
            "title": "c",
            "kind": "check",
            "depends_on": ["b"],
            "probes": [{"type": "tcp", "host": "127.0.0.1", "port": "${inputs.port}"}],
        },
        {"id": "d", "title": "d", "kind": "approval", "depends_on": ["c"]},
        inputs={"port": {"default": 5432}},
    )
    assert [s.kind for s in runbook.steps] == ["manual", "job", "check", "approval"]
    assert isinstance(runbook.steps[1], JobStep) and runbook.steps[1].engine == "postgres"
    assert isinstance(runbook.steps[2], CheckStep)
    assert problems(runbook) == []


def test_unknown_kind_is_refused_by_the_model() -> None:
    with pytest.raises(ValidationError) as caught:
        book({"id": "a", "title": "a", "kind": "telepathy"})
    assert caught.value.errors()[0]["type"] == "union_tag_invalid"


def test_duplicate_ids_and_unknown_dependencies() -> None:
    found = messages(book(manual("a"), manual("a"), manual("b", "ghost"), manual("c", "c")))
    assert "duplicate step id" in found
    assert "depends on unknown step 'ghost'" in found
    assert "depends on itself" in found


def test_a_cycle_is_named_with_its_path() -> None:
    found = problems(book(manual("a", "c"), manual("b", "a"), manual("c", "b")))
    cycles = [p for p in found if p.message.startswith("dependency cycle")]
    # Found walking from the first step: it closes at b, whose depends_on points back to a.
    assert [(c.path, c.step, c.message) for c in cycles] == [
        (("steps", 1, "depends_on"), "b", "dependency cycle: a -> c -> b -> a")
    ]


def test_references_must_name_declared_inputs_and_earlier_steps() -> None:
    runbook = book(
        job("pick", params={"backup": "${inputs.missing}"}),
        job("other"),
        job(
            "restore",
            "pick",
            params={
                "a": "${steps.pick.outputs.backup_id}",
                "b": "${steps.other.outputs.x}",
                "c": "${steps.nope.outputs.x}",
                "d": "${nonsense}",
            },
        ),
        manual("m", "restore"),
        job("after", "m", params={"x": "${steps.m.outputs.y}"}),
    )
    found = problems(runbook)
    text = [p.message for p in found]
    assert any("names an input that the runbook does not declare" in t for t in text)
    assert any("which this step does not depend on" in t for t in text)
    assert any("unknown step 'nope'" in t for t in text)
    assert any("is not a reference" in t for t in text)
    assert any("manual step 'm' has no outputs" in t for t in text)
    # The problem's path points at the parameter, for the file's line number.
    paths = {p.path for p in found}
    assert ("steps", 2, "params", "b") in paths


def test_transitive_dependencies_count_as_earlier() -> None:
    runbook = book(job("a"), manual("b", "a"), job("c", "b", params={"x": "${steps.a.outputs.k}"}))
    assert problems(runbook) == []


def test_budget_too_long_and_chain_past_the_objective() -> None:
    runbook = book(manual("a", budget="25h"))
    assert any("longer than" in m for m in messages(runbook))
    chain = book(manual("a", budget="3h"), manual("b", "a", budget="2h"), manual("c", budget="4h"))
    assert critical_path(chain) == timedelta(hours=5)
    warned = problems(chain, objective=timedelta(hours=4))
    assert [p.warning for p in warned] == [True]


def test_job_without_engine_becomes_manual_or_skipped() -> None:
    runbook = book(
        job("a", operation="etcd.restore"),
        job("b", operation="etcd.restore", unavailable="skip"),
        job("c", operation="postgres.restore"),
        manual("d"),
    )
    modes = [step_mode(s, lambda op: op.startswith("postgres.")) for s in runbook.steps]
    assert modes == [StepMode.MANUAL, StepMode.SKIPPED, StepMode.AUTOMATED, StepMode.MANUAL]
    # The same file is automated once the engine lands.
    assert step_mode(runbook.steps[0], lambda op: True) == StepMode.AUTOMATED


def test_resolve_keeps_types_for_whole_references_and_formats_inside_text() -> None:
    values = {"inputs.port": 5433, "steps.p.outputs.id": "postgres-20261124T0300Z-7f3a"}
    resolved = resolve(
        {"port": "${inputs.port}", "dsn": "port=${inputs.port}", "ids": ["${steps.p.outputs.id}"]},
        values.__getitem__,
    )
    assert resolved == {
        "port": 5433,
        "dsn": "port=5433",
        "ids": ["postgres-20261124T0300Z-7f3a"],
    }


def test_a_step_is_found_by_its_id_or_the_id_is_the_key_error() -> None:
    runbook = book(manual("a"), job("b", "a"))
    assert runbook.step("b").id == "b"
    assert runbook.ids == ["a", "b"]
    with pytest.raises(KeyError) as caught:
        runbook.step("ghost")
    assert caught.value.args == ("ghost",)
