"""``/dr``: a step card's buttons, typed, parse into the answers the state machine takes."""

from __future__ import annotations

import pytest

from bot.grammar.command import Command
from bot.grammar.runbook import DrAnswer, DrApprove, DrStatus, parse_dr
from workers.core.errors import UsageError

RUN = "dr-20261124T030000Z-7f3a"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("done scale-down", DrAnswer(step_id="scale-down", answer="done")),
        (f"done scale-down {RUN}", DrAnswer(step_id="scale-down", answer="done", run_id=RUN)),
        ("done freeze -- at 03:10", DrAnswer(step_id="freeze", answer="done", note="at 03:10")),
        ("skip dns -- not ours", DrAnswer(step_id="dns", answer="skip", note="not ours")),
        ("failed dns -- page down", DrAnswer(step_id="dns", answer="failed", note="page down")),
        ("retry restore", DrAnswer(step_id="restore", answer="retry")),
        ("fail restore", DrAnswer(step_id="restore", answer="fail")),
        ("confirm dns skip -- not ours", DrAnswer(step_id="dns", answer="skip", note="not ours")),
        (f"confirm scale-up done {RUN}", DrAnswer(step_id="scale-up", answer="done", run_id=RUN)),
        ("approve gate", DrApprove(step_id="gate")),
        ("status", DrStatus()),
    ],
)
def test_answers_parse(text: str, expected: Command) -> None:
    assert parse_dr(text) == expected


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("skip dns", "/dr skip needs a reason", "/dr skip dns -- <reason>"),
        ("failed notify", "/dr failed needs a note", "/dr failed notify -- <note>"),
        ("done", "/dr done needs the step's id", "/dr status"),
        ("confirm dns maybe", "usage: /dr confirm <step> <answer>", "done, skip, failed"),
        ("done dns not-a-run", "'not-a-run' is not a run id", "dr-20261124T030000Z-7f3a"),
        ("done Bad!Step", "step_id: string should match pattern", "/dr done|skip|failed"),
        ("approve", "/dr approve needs the step's id", "/dr status"),
    ],
)
def test_wrong_answers_say_the_right_form(text: str, message: str, hint: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_dr(text)
    assert message in caught.value.message
    assert hint in caught.value.hint


def test_answers_need_the_roles_of_the_buttons() -> None:
    assert DrAnswer.action == "dr.confirm"  # operators and incident commanders
    assert DrApprove.action == "dr.approve"  # approvers
