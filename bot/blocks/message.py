"""Block Kit builders (slack_sdk models): pure, and never past Slack's limits.

A message holds at most 50 blocks and a section's text at most 3,000 characters; builders
pack lines into sections and split into several messages rather than let Slack refuse one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.mrkdwn import MAX_TEXT, clip

MAX_BLOCKS = 50
MAX_HEADER = 150


@dataclass(frozen=True)
class Message:
    """One Slack message: fallback text plus blocks (already dicts)."""

    text: str
    blocks: list[dict[str, Any]]

    def payload(self) -> dict[str, Any]:
        """Keyword arguments for chat.postMessage / chat.update / a response."""
        return {"text": self.text, "blocks": self.blocks}


def sections(lines: Iterable[str]) -> list[Block]:
    """Pack lines into as few mrkdwn sections as fit 3,000 characters each."""
    blocks: list[Block] = []
    current = ""
    for raw in lines:
        line = clip(raw)
        if current and len(current) + 1 + len(line) > MAX_TEXT:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=current)))
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=current)))
    return blocks


def fit(text: str, blocks: Sequence[Block], header: str | None = None) -> list[Message]:
    """Split blocks into messages of at most 50 blocks, repeating the header on each."""
    head = [header_block(header)] if header else []
    room = MAX_BLOCKS - len(head)
    chunks = [list(blocks[i : i + room]) for i in range(0, len(blocks), room)] or [[]]
    messages = []
    for number, chunk in enumerate(chunks):
        title = head
        if header and number:
            title = [header_block(f"{header} (continued)")]
        messages.append(Message(clip(text), [b.to_dict() for b in [*title, *chunk]]))
    return messages


def section(text: str) -> dict[str, Any]:
    """One mrkdwn section, clipped to Slack's limit."""
    return SectionBlock(text=MarkdownTextObject(text=clip(text))).to_dict()


def header_block(text: str) -> Block:
    """A header block, clipped to Slack's limit."""
    return HeaderBlock(text=PlainTextObject(text=clip(text, MAX_HEADER)))
