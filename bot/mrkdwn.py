"""Slack's mrkdwn text: its three control characters escaped, and text clipped to a limit."""

from __future__ import annotations

MAX_TEXT = 3000
"""Characters in one section's text: Slack refuses more."""
ELLIPSIS = "…"


def escape(text: str) -> str:
    """Text safe inside mrkdwn: Slack's three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS
