"""Operation requests: what a front door asks a worker to do, as JSON-only data."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workers.core.events import ChatContext


class OperationKind(StrEnum):
    """Every kind of work the workers do."""

    BACKUP = "backup"
    VERIFY = "verify"
    RESTORE = "restore"
    PRUNE = "prune"
    RPO_CHECK = "rpo-check"
    SWEEP = "sweep"
    DR_STEP = "dr-step"


class OperationState(StrEnum):
    """Where an operation stands."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class OperationRequest(BaseModel):
    """A request for one operation; its JSON form is the job's only argument."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op_id: str
    kind: OperationKind
    component: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    chat: ChatContext = ChatContext()
    requested_at: datetime
    requested_by: str | None = None
