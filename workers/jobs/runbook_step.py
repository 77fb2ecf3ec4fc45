"""The DR step job: one RQ job per runbook step (and one for the final report).

Thin: the runner reports the operation; :mod:`workers.runbooks.flow` does the step, records
its outcome in the run and advances the run. A step's failure is the run's business (its
policy says stop, retry or ask), so the job itself ends normally unless something outside
the step broke.
"""

from __future__ import annotations

from typing import Any

from workers.core.operations import DrStepParams
from workers.jobs.runner import JobRun, execute
from workers.runbooks import durability as dr
from workers.runbooks import flow as runbook_flow
from workers.runbooks import steps


def run_step(payload: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: one step of a run (DrStepParams; step ``_report`` is the report)."""
    return execute(payload, _step, lock=False)


def _step(run: JobRun) -> dict[str, Any]:
    params = DrStepParams.of(run.request)
    run_id, step_id = params.run_id, params.step_id
    if step_id == runbook_flow.REPORT_STEP:
        summary = dr.finish(run.ctx, run_id)
        return {"run_id": run_id, "result": summary["result"], "files": summary["files"]}
    return steps.run_step(run.ctx, run_id, step_id, run.request.op_id, run.progress)
