"""Reading rendered messages back, and Slack's limits on them."""

from __future__ import annotations

from typing import Any

from bot.blocks.message import MAX_BLOCKS
from bot.mrkdwn import MAX_TEXT


def texts(message: Any) -> list[str]:
    """Every text of a message's blocks and their elements."""
    found = []
    for block in message.blocks:
        if "text" in block:
            found.append(block["text"]["text"])
        for element in block.get("elements", []):
            found.append(element["text"])
    return found


def assert_within_limits(messages: list[Any]) -> None:
    """No message over 50 blocks, no text over 3,000 characters."""
    for message in messages:
        assert len(message.blocks) <= MAX_BLOCKS
        assert len(message.text) <= MAX_TEXT
        for text in texts(message):
            assert len(text) <= MAX_TEXT
