"""A slash command's answer within Slack's deadline: in the acknowledgement, or after it.

The work is held on an Event, so "slow" is a state the test controls, not a sleep.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.blocks.message import Message
from bot.slack.answer import SLOW, Answers
from tests.sync import wait_until
from workers.core.errors import StorageUnavailable, UsageError

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


class Door:
    """What Bolt hands a listener: ``ack`` and ``respond``, recording what they were given."""

    def __init__(self) -> None:
        self.acks: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []

    def ack(self, **kwargs: Any) -> None:
        self.acks.append(kwargs)

    def respond(self, **kwargs: Any) -> None:
        self.responses.append(kwargs)


def message(text: str) -> Message:
    return Message(text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}])


@pytest.fixture
def answers() -> Answers:
    return Answers(lambda: NOW, answer_within=0.3)


def test_work_done_in_time_is_answered_in_the_acknowledgement(answers: Answers) -> None:
    door = Door()
    answers.answer(door.ack, door.respond, lambda: [message("board"), message("more")])
    assert door.acks == [{"response_type": "ephemeral", **message("board").payload()}]
    wait_until(lambda: len(door.responses) == 1, 5, "the second part")
    assert door.responses == [
        {"response_type": "ephemeral", "replace_original": False, **message("more").payload()}
    ]


def test_slow_work_is_acknowledged_in_time_and_answered_when_it_ends(answers: Answers) -> None:
    door, release = Door(), threading.Event()

    def slow() -> list[Message]:
        assert release.wait(10)
        return [message("card posted")]

    answers.answer(door.ack, door.respond, slow)
    assert door.acks == [{"response_type": "ephemeral", "text": SLOW}]
    assert door.responses == []  # nothing before the work ends
    release.set()
    wait_until(lambda: bool(door.responses), 5, "the late answer")
    assert door.responses == [
        {
            "response_type": "ephemeral",
            "replace_original": False,
            **message("card posted").payload(),
        }
    ]


def test_an_error_after_the_acknowledgement_is_answered_as_the_error_handler_words_it(
    answers: Answers,
) -> None:
    door, release = Door(), threading.Event()

    def refused() -> list[Message]:
        assert release.wait(10)
        raise StorageUnavailable("the backup store did not answer within 20s", hint="try again")

    answers.answer(door.ack, door.respond, refused)
    release.set()
    wait_until(lambda: bool(door.responses), 5, "the late error")
    shown = door.responses[0]["blocks"][0]["text"]["text"]
    assert shown == ":x: the backup store did not answer within 20s\n_try again_"


def test_a_bug_after_the_acknowledgement_is_an_internal_error_with_an_id(
    answers: Answers,
) -> None:
    door, release = Door(), threading.Event()

    def broken() -> list[Message]:
        assert release.wait(10)
        raise RuntimeError("secret detail")

    answers.answer(door.ack, door.respond, broken)
    release.set()
    wait_until(lambda: bool(door.responses), 5, "the late internal error")
    shown = door.responses[0]["blocks"][0]["text"]["text"]
    assert shown.startswith(":boom: internal error, operation `op-20261205T030000Z-")
    assert "secret detail" not in str(door.responses)


def test_an_error_in_time_reaches_the_caller_and_nothing_is_acknowledged(
    answers: Answers,
) -> None:
    door = Door()

    def bad() -> list[Message]:
        raise UsageError("unknown subcommand 'frobnicate' for /backup")

    with pytest.raises(UsageError, match="frobnicate"):
        answers.answer(door.ack, door.respond, bad)
    assert door.acks == [] and door.responses == []
