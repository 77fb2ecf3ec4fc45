"""An operation's life as one view: events folded in, whatever order or repeats they arrive in.

Pure. The relay and the console both fold events into an :class:`OperationView` and render
that view; folding the same event twice, or a late progress event after the end, leaves the
view as it was, so a redelivered stream entry can never move a message backwards.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field

from bot.formats import size
from bot.grammar.command import chat_command
from bot.replies.results import restore_facts, verify_facts
from workers.core.durations import humanize
from workers.core.errors import Suggestion
from workers.core.events import ChatContext, Event, EventType
from workers.core.model import Model


class Stage(StrEnum):
    """Where an operation's message stands."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


_RANK = {Stage.QUEUED: 0, Stage.RUNNING: 1, Stage.DONE: 2, Stage.FAILED: 2}


class OperationView(Model):
    """What a message about one operation shows."""

    model_config = ConfigDict(frozen=True)

    op_id: str
    operation: str
    component: str | None = None
    chat: ChatContext = ChatContext()
    stage: Stage = Stage.QUEUED
    accepted_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    progress_at: datetime | None = None
    phase: str | None = None
    done_bytes: int | None = None
    total_bytes: int | None = None
    percent: float | None = None
    summary: dict[str, Any] = Field(default_factory=dict)
    error_class: str | None = None
    message: str | None = None
    hint: str | None = None
    suggestion: Suggestion | None = None

    @property
    def ended(self) -> bool:
        """Whether the operation finished or failed."""
        return self.stage in (Stage.DONE, Stage.FAILED)


def fold(view: OperationView | None, event: Event) -> OperationView:
    """The view after ``event``; idempotent, and an ended operation never changes again."""
    current = view or OperationView(
        op_id=event.op_id, operation=event.operation, component=event.component, chat=event.chat
    )
    if current.ended or event.type in (EventType.NOTE, EventType.ALERT, EventType.RECOVERED):
        return current
    changes: dict[str, Any] = {}
    if event.type == EventType.ACCEPTED:
        changes["accepted_at"] = current.accepted_at or event.at
    elif event.type in (EventType.STARTED, EventType.PROGRESS):
        changes.update(_running(current, event))
    elif event.type == EventType.FINISHED:
        changes.update(stage=Stage.DONE, ended_at=event.at, summary=dict(event.summary))
    elif event.type == EventType.FAILED:
        changes.update(
            stage=Stage.FAILED,
            ended_at=event.at,
            error_class=event.error_class,
            message=event.message,
            hint=event.hint,
            suggestion=event.suggestion,
            summary=dict(event.summary),
        )
    if _RANK[changes.get("stage", current.stage)] < _RANK[current.stage]:
        changes.pop("stage", None)
    return current.model_copy(update=changes)


def _running(current: OperationView, event: Event) -> dict[str, Any]:
    changes: dict[str, Any] = {"stage": Stage.RUNNING}
    if current.started_at is None or event.type == EventType.STARTED:
        changes["started_at"] = current.started_at or event.at
    if current.progress_at is not None and event.at < current.progress_at:
        return changes  # an older progress report: keep the newer figures
    changes["progress_at"] = event.at
    for name in ("phase", "done_bytes", "total_bytes", "percent"):
        value = getattr(event, name)
        if value is not None:
            changes[name] = value
    return changes


def chat_hint(view: OperationView) -> str | None:
    """A failed operation's hint, its suggested command spelled as typed in chat."""
    return view.suggestion.text(chat_command) if view.suggestion else view.hint


def percent_of(view: OperationView) -> float | None:
    """The progress in percent: as reported, else from bytes when the total is known."""
    if view.percent is not None:
        return max(0.0, min(100.0, view.percent))
    if view.done_bytes is not None and view.total_bytes:
        return max(0.0, min(100.0, 100.0 * view.done_bytes / view.total_bytes))
    return None


def title(view: OperationView) -> str:
    """``Backup of postgres``, ``Verification of etcd``."""
    noun = {"backup": "Backup", "verify": "Verification", "restore": "Restore"}.get(
        view.operation, view.operation.capitalize()
    )
    return f"{noun} of {view.component}" if view.component else noun


def stage_text(view: OperationView, rto_seconds: float | None = None) -> str:
    """Plain text of where the operation stands: phase, percent, bytes, or its result.

    ``rto_seconds`` (the objective) puts a restore's duration against the RTO.
    """
    if view.stage == Stage.QUEUED:
        return "queued"
    if view.stage == Stage.RUNNING:
        parts = ["running" + (f": {view.phase}" if view.phase else "")]
        percent = percent_of(view)
        if percent is not None:
            parts.append(f"{percent:.0f}% {bar(percent)}")
        if view.done_bytes is not None:
            total = f" of {size(view.total_bytes)}" if view.total_bytes else ""
            parts.append(f"{size(view.done_bytes)}{total}")
        return " · ".join(parts)
    if view.stage == Stage.DONE:
        return "done · " + " · ".join(result_facts(view, rto_seconds))
    return f"failed: {view.message or 'no reason given'}"


def result_facts(view: OperationView, rto_seconds: float | None = None) -> list[str]:
    """What an ended operation made or found, as far as its summary tells.

    Size, duration and backup id; a restore's tables, rows and checksums compared and its
    duration against the RTO; a verification's verdict, depth and what it checked.
    """
    summary = dict(view.summary)
    seconds = summary.get("duration_seconds")
    if not isinstance(seconds, int | float) and view.started_at and view.ended_at:
        summary["duration_seconds"] = (view.ended_at - view.started_at).total_seconds()
    restored = view.operation == "restore"
    facts = restore_facts(summary, rto_seconds) if restored else _made(summary)
    backup_id = summary.get("backup_id")
    if backup_id:
        facts.append(f"backup {backup_id}")
    facts += verify_facts(summary)
    return facts or ["no details"]


def _made(summary: dict[str, Any]) -> list[str]:
    facts = []
    stored = summary.get("size", summary.get("total_size"))
    if isinstance(stored, int):
        facts.append(size(stored))
    seconds = summary.get("duration_seconds")
    if isinstance(seconds, int | float):
        facts.append(f"in {humanize(seconds)}")
    return facts


def bar(percent: float, width: int = 10) -> str:
    """A text progress bar."""
    filled = round(percent / 100 * width)
    return "▓" * filled + "░" * (width - filled)
