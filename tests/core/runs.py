"""Runs to test with: a runbook from step dicts, started by U1 at T0 (04:00 RTO, 01:00 RPO)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from workers.core.run_start import new_run
from workers.core.runbook import Runbook, StepMode
from workers.core.runbook_run import RunState

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
RUN_ID = "dr-20261124T030000Z-ab12"


def at(seconds: float) -> datetime:
    """``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def make_run(
    steps: list[dict[str, Any]],
    *,
    modes: dict[str, StepMode] | None = None,
    safe: dict[str, bool] | None = None,
    params: dict[str, str] | None = None,
    rto: timedelta = timedelta(hours=4),
    **extra: Any,
) -> RunState:
    """A fresh run of a runbook named ``t``; manual steps are manual unless ``modes`` says."""
    runbook = Runbook.model_validate({"name": "t", "title": "T", "steps": steps, **extra})
    manual_modes = {s["id"]: StepMode.MANUAL for s in steps if s["kind"] == "manual"}
    return new_run(
        runbook,
        run_id=RUN_ID,
        params=params or {},
        started_by="U1",
        now=T0,
        rto=rto,
        rpo=timedelta(hours=1),
        modes={**manual_modes, **(modes or {})},
        safe=safe or {},
    )


def job(step_id: str, *deps: str, **extra: Any) -> dict[str, Any]:
    """A ``postgres.restore`` job step."""
    return {
        "id": step_id,
        "title": step_id,
        "kind": "job",
        "operation": "postgres.restore",
        "depends_on": list(deps),
        **extra,
    }


def manual(step_id: str, *deps: str, **extra: Any) -> dict[str, Any]:
    """A manual step."""
    return {"id": step_id, "title": step_id, "kind": "manual", "depends_on": list(deps), **extra}


def gate(step_id: str, *deps: str, **extra: Any) -> dict[str, Any]:
    """An approval step."""
    return {"id": step_id, "title": step_id, "kind": "approval", "depends_on": list(deps), **extra}
