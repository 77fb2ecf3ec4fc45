"""Operation events: where a conversation happens, and which events end an operation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from workers.core.events import CONSOLE, ChatContext, Event, EventType

AT = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("chat", "place"),
    [
        (ChatContext(source="slack", channel="C042"), "C042"),
        (ChatContext(source="console", channel="C042"), "C042"),
        (ChatContext(source="console"), "console"),
        (ChatContext(source="slack"), None),
        (ChatContext(source="cli"), None),
        (ChatContext(), None),
    ],
)
def test_the_place_is_the_channel_else_the_console_else_nowhere(
    chat: ChatContext, place: str | None
) -> None:
    assert chat.place == place


def test_the_console_is_its_own_place_and_a_default_chat_is_the_cli() -> None:
    assert CONSOLE == "console"
    assert ChatContext().source == "cli"
    with pytest.raises(ValidationError):
        ChatContext(source="email")


@pytest.mark.parametrize("kind", list(EventType))
def test_only_finished_and_failed_end_an_operation(kind: EventType) -> None:
    event = Event(op_id="op-1", type=kind, at=AT, operation="backup")
    assert event.terminal is (kind in (EventType.FINISHED, EventType.FAILED))
