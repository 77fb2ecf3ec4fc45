"""Operation events: what jobs report and every front door renders."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field

from workers.core.errors import Suggestion
from workers.core.model import Model

EVENT_STREAM = "events"
"""Stream name under the configured Redis key prefix: ``<prefix>:events``."""
EVENT_STREAM_MAXLEN = 100_000
CONSOLE = "console"
"""The console chat's source, and its place (it has no channel)."""


class EventType(StrEnum):
    """The life of an operation, plus monitor alerts."""

    ACCEPTED = "accepted"
    STARTED = "started"
    PROGRESS = "progress"
    NOTE = "note"
    FINISHED = "finished"
    FAILED = "failed"
    ALERT = "alert"
    RECOVERED = "recovered"


TERMINAL = frozenset({EventType.FINISHED, EventType.FAILED})


class ChatContext(Model):
    """Where a request came from, so its answers go back there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(default="cli", pattern=r"^(slack|console|cli|scheduler|monitor|runbook)$")
    channel: str | None = None
    thread_ts: str | None = None
    user: str | None = None
    response_url: str | None = None

    @property
    def place(self) -> str | None:
        """Where the conversation happens: the channel, or ``console`` for the console chat.

        ``/dr status`` without a run id shows the newest run of this place.
        """
        return self.channel or (CONSOLE if self.source == CONSOLE else None)


class Event(Model):
    """One event of one operation; JSON on the Redis stream."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op_id: str
    type: EventType
    at: datetime
    operation: str = Field(description="backup, verify, restore, prune, rpo-check, dr-step…")
    component: str | None = None
    chat: ChatContext = ChatContext()
    phase: str | None = None
    done_bytes: int | None = None
    total_bytes: int | None = None
    percent: float | None = None
    note: str | None = None
    summary: dict[str, Any] = Field(default_factory=dict)
    error_class: str | None = None
    message: str | None = None
    hint: str | None = None
    suggestion: Suggestion | None = Field(
        default=None, description="the hint's command, for front doors that spell it their way"
    )

    @property
    def terminal(self) -> bool:
        """Whether the operation ended with this event."""
        return self.type in TERMINAL
