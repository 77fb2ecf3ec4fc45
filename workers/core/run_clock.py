"""The recovery-time clock of a runbook run: elapsed time against the RTO objective."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import ConfigDict

from workers.core.model import Model
from workers.core.runbook_run import RunState, StepStatus

RTO_WARNING = 0.75
"""Fraction of the RTO objective at which the clock turns to a warning."""


class RtoClock(Model):
    """Elapsed recovery time against the objective."""

    model_config = ConfigDict(frozen=True)

    elapsed: timedelta
    objective: timedelta
    level: Literal["ok", "warning", "breached"]
    stopped: bool

    @property
    def fraction(self) -> float:
        """Elapsed over objective."""
        return self.elapsed / self.objective if self.objective else 0.0


def rto_clock(run: RunState, now: datetime) -> RtoClock:
    """Elapsed time against the RTO; stops when the recovery step (or the run) ended."""
    end = recovered_at(run) or run.finished_at
    elapsed = (end or now) - run.started_at
    fraction = elapsed / run.rto if run.rto else 0.0
    level: Literal["ok", "warning", "breached"] = (
        "breached" if fraction >= 1 else "warning" if fraction >= RTO_WARNING else "ok"
    )
    return RtoClock(elapsed=elapsed, objective=run.rto, level=level, stopped=end is not None)


def recovered_at(run: RunState) -> datetime | None:
    """When service counted as restored: the end of ``recovered_after`` if it succeeded."""
    target = run.runbook.report.recovered_after
    if target is None:
        return None
    state = run.steps.get(target)
    if state is None or state.status != StepStatus.DONE:
        return None
    return state.finished_at
