"""One step's state within a runbook run, and the run's own status (see core.runbook_run)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field

from workers.core.model import Model
from workers.core.runbook import StepMode


class StepStatus(StrEnum):
    """Where a step stands."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


FINISHED_STEP = frozenset({StepStatus.DONE, StepStatus.FAILED, StepStatus.SKIPPED})


class Awaiting(StrEnum):
    """What a running step waits for from a person."""

    CONFIRMATION = "confirmation"
    APPROVAL = "approval"
    DECISION = "decision"


class RunStatus(StrEnum):
    """Where the whole run stands."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    ABORTED = "aborted"


class ProbeResult(Model):
    """The outcome of one check probe."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    ok: bool
    detail: str = ""
    seconds: float = 0.0


class StepRun(Model):
    """One step's progress in one run."""

    model_config = ConfigDict(extra="forbid")

    status: StepStatus = StepStatus.PENDING
    mode: StepMode = StepMode.AUTOMATED
    safe_to_repeat: bool = True
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempt_at: datetime | None = Field(default=None, description="start of the last attempt")
    attempts: int = 0
    op_id: str | None = None
    executing: bool = Field(default=False, description="a worker began the step's work")
    awaiting: Awaiting | None = None
    question: str | None = None
    confirmed_by: str | None = None
    note: str | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    probes: list[ProbeResult] = Field(default_factory=list)
    error: str | None = None
    hint: str | None = None
    approval_id: str | None = None
    approvers: list[str] = Field(default_factory=list, description="who approved a gate step")

    def seconds(self, now: datetime) -> float | None:
        """How long the step ran (so far, when it still runs)."""
        if self.started_at is None:
            return None
        end = self.finished_at or now
        return max(0.0, (end - self.started_at).total_seconds())
