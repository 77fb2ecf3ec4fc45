"""Finding a message Slack may already hold: Slack has no idempotency key, so the relay's
messages carry metadata that names what they show, and a post whose answer was lost is
looked up by it before it is sent again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

OP_METADATA = "kosmos_operation"
"""Slack message metadata ``event_type`` of the relay's messages."""
LOOKUP_PAGES = 5
"""Pages of history (200 messages each) searched for a message."""

Call = Callable[..., "dict[str, Any] | float | None"]
"""``Relay._call`` for one method: Slack's answer, seconds to wait, or None when refused."""


def mark(op_id: str, entry_id: str | None = None) -> dict[str, Any]:
    """The metadata of an operation's message, or of the thread reply for one stream entry."""
    payload = {"op_id": op_id} | ({"entry": entry_id} if entry_id else {})
    return {"event_type": OP_METADATA, "event_payload": payload}


def marked(message: dict[str, Any]) -> dict[str, Any] | None:
    """What a message's metadata says it shows, if it is one of ours."""
    metadata = message.get("metadata") or {}
    return metadata.get("event_payload") if metadata.get("event_type") == OP_METADATA else None


def find(
    call: Call, channel: str, thread: str | None, wanted: dict[str, Any]
) -> str | None | float:
    """The ts of the message marked ``wanted`` in a thread (``conversations.replies``) or in
    the channel's recent history; None if not there or the lookup was refused (say, no
    ``channels:history`` scope: a second message beats none); seconds to wait if Slack
    could not be asked."""
    where = {"ts": thread} if thread else {}
    method = "conversations_replies" if thread else "conversations_history"
    cursor = ""
    for _ in range(LOOKUP_PAGES):
        answer = call(
            method,
            channel=channel,
            include_all_metadata=True,
            limit=200,
            **where,
            **({"cursor": cursor} if cursor else {}),
        )
        if isinstance(answer, float) or answer is None:
            return answer
        for message in answer.get("messages") or []:
            if marked(message) == wanted:
                return str(message["ts"])
        cursor = (answer.get("response_metadata") or {}).get("next_cursor") or ""
        if not cursor:
            break
    return None
