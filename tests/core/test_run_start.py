"""Starting a run: parameters checked against the runbook, refusals in words, defaults filled."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.core.runs import RUN_ID, T0, job, make_run, manual
from workers.core.errors import UsageError
from workers.core.events import ChatContext
from workers.core.run_start import inputs_of, new_run
from workers.core.runbook import Runbook, StepMode


def book(**extra: Any) -> Runbook:
    return Runbook.model_validate({"name": "t", "title": "T", "steps": [job("a")], **extra})


def refusal(runbook: Runbook, params: dict[str, str]) -> tuple[str, str]:
    with pytest.raises(UsageError) as caught:
        inputs_of(runbook, params)
    return caught.value.message, caught.value.hint


def test_an_unknown_parameter_is_refused_naming_the_ones_there_are() -> None:
    assert refusal(book(), {"db": "x"}) == ("runbook t has no parameter 'db'", "parameters: none")
    both = book(inputs={"db": {"default": "x"}, "port": {"default": 5432}})
    assert refusal(both, {"zz": "1", "aa": "2"}) == (
        "runbook t has no parameter 'aa'",
        "parameters: db, port",
    )


def test_a_missing_parameter_is_refused_with_its_description() -> None:
    described = book(inputs={"db": {"description": "the database to restore"}})
    assert refusal(described, {}) == ("runbook t needs --param db=…", "the database to restore")
    bare = book(inputs={"db": {}})
    assert refusal(bare, {}) == ("runbook t needs --param db=…", "see: kosmos-backup runbook check")


def test_given_values_win_and_defaults_fill_the_rest() -> None:
    runbook = book(inputs={"db": {"default": "x"}, "port": {"default": 5432}, "need": {}})
    assert inputs_of(runbook, {"need": "1", "db": "mine"}) == {
        "db": "mine",
        "port": 5432,
        "need": "1",
    }


def test_a_default_may_refer_to_the_run_and_to_other_inputs() -> None:
    run = make_run(
        [job("a")],
        inputs={"db": {}, "copy": {"default": "${inputs.db}_${run.tag}"}, "port": {"default": 1}},
        params={"db": "kb"},
    )
    assert run.inputs == {"db": "kb", "copy": "kb_ab12", "port": 1}


def test_every_step_starts_pending_in_its_mode_and_safe_unless_told() -> None:
    run = make_run(
        [job("a"), job("b"), manual("m")],
        modes={"b": StepMode.SKIPPED},
        safe={"b": False},
    )
    assert {sid: (s.status, s.mode, s.safe_to_repeat) for sid, s in run.steps.items()} == {
        "a": ("pending", StepMode.AUTOMATED, True),
        "b": ("pending", StepMode.SKIPPED, False),
        "m": ("pending", StepMode.MANUAL, True),
    }
    assert (run.run_id, run.started_at, run.started_by, run.chat) == (
        RUN_ID,
        T0,
        "U1",
        ChatContext(),
    )


def test_the_run_answers_where_it_was_asked() -> None:
    chat = ChatContext(source="slack", channel="C1", thread_ts="1.2", user="U1")
    run = new_run(
        book(),
        run_id=RUN_ID,
        params={},
        started_by="U1",
        now=T0,
        rto=timedelta(hours=2),
        rpo=timedelta(minutes=5),
        modes={},
        safe={},
        chat=chat,
    )
    assert (run.chat, run.rto, run.rpo) == (chat, timedelta(hours=2), timedelta(minutes=5))
