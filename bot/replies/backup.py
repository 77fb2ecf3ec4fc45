"""What ``/backup`` answers, before rendering: the status board, a list, accepted, help."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.grammar.command import Command
from workers.core.catalog import ComponentStatus
from workers.core.config import Objectives
from workers.core.manifest import BackupSummary


@dataclass(frozen=True)
class StatusReply:
    """The status board: objectives and one row per component."""

    objectives: Objectives
    rows: list[ComponentStatus]
    now: datetime
    drill: dict[str, Any] | None = None  # the last DR drill (workers.runbooks.drills.last_drill)


@dataclass(frozen=True)
class ListReply:
    """A component's newest backups (``total`` counts them all)."""

    component: str
    backups: list[BackupSummary]
    total: int
    now: datetime


@dataclass(frozen=True)
class AcceptedReply:
    """An operation was queued; ``repeated`` when this was a retry of an accepted request."""

    op_id: str
    command: Command
    description: str
    repeated: bool = False


@dataclass(frozen=True)
class HelpReply:
    """Usage lines (usage, summary) of one command group, or of one verb when ``topic``."""

    group: str
    lines: list[tuple[str, str]]
    topic: str | None = None
