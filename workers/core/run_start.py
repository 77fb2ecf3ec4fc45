"""A new runbook run: its inputs checked against the runbook, every step pending."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from workers.core.errors import UsageError
from workers.core.events import ChatContext
from workers.core.run_steps import StepRun
from workers.core.runbook import Runbook, StepMode
from workers.core.runbook_run import RunState


def inputs_of(runbook: Runbook, params: dict[str, str]) -> dict[str, Any]:
    """The run's inputs: ``params`` checked against the runbook, defaults filled in."""
    unknown = sorted(set(params) - set(runbook.inputs))
    if unknown:
        raise UsageError(
            f"runbook {runbook.name} has no parameter {unknown[0]!r}",
            hint="parameters: " + (", ".join(runbook.inputs) or "none"),
        )
    inputs: dict[str, Any] = {}
    for name, spec in runbook.inputs.items():
        if name in params:
            inputs[name] = params[name]
        elif spec.required:
            raise UsageError(
                f"runbook {runbook.name} needs --param {name}=…",
                hint=spec.description or "see: kosmos-backup runbook check",
            )
        else:
            inputs[name] = spec.default
    return inputs


def new_run(
    runbook: Runbook,
    *,
    run_id: str,
    params: dict[str, str],
    started_by: str,
    now: datetime,
    rto: timedelta,
    rpo: timedelta,
    modes: dict[str, StepMode],
    safe: dict[str, bool],
    chat: ChatContext | None = None,
) -> RunState:
    """A fresh run: inputs checked against the runbook, defaults filled, every step pending."""
    inputs = inputs_of(runbook, params)
    steps = {
        step.id: StepRun(
            mode=modes.get(step.id, StepMode.AUTOMATED), safe_to_repeat=safe.get(step.id, True)
        )
        for step in runbook.steps
    }
    state = RunState(
        run_id=run_id,
        runbook=runbook,
        inputs=inputs,
        started_at=now,
        started_by=started_by,
        chat=chat or ChatContext(),
        rto=rto,
        rpo=rpo,
        steps=steps,
    )
    state.inputs = {k: state.resolved(v) if isinstance(v, str) else v for k, v in inputs.items()}
    return state
