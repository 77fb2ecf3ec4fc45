"""One automated runbook step, done: the job body, its outcome recorded, the run advanced.

Both ends of the step are durable updates of the run (see :func:`run_step`); what the step
does is its operation's business (``workers.runbooks.operations``) or a check's probes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from workers.context import Context
from workers.core.errors import KosmosError
from workers.core.runbook import CheckStep, JobStep
from workers.core.runbook_run import ProbeResult, RunState, StepStatus
from workers.runbooks import operations as runbook_ops
from workers.runbooks.flow import advance
from workers.runbooks.runs import Submit, log, runs, step_event


def run_step(
    ctx: Context,
    run_id: str,
    step_id: str,
    op_id: str,
    progress: Any = None,
    *,
    submit: Submit | None = None,
) -> dict[str, Any]:
    """Do one automated step's work (the job body); record the outcome; advance the run.

    Both ends of the step are durable updates: if Redis was lost (flushed, or restarted
    empty or older) while the step ran, its outcome goes onto the storage's copy of the run,
    which is put back into Redis, so the run neither forgets the step nor runs it again.
    """
    store = runs(ctx)
    run, verdict = store.update(run_id, lambda r: r.begin_execution(step_id, op_id), durable=True)
    if verdict == "stale":
        log.info("stale step job dropped", run_id=run_id, step=step_id, op_id=op_id)
        return {"run_id": run_id, "step": step_id, "outcome": "stale"}
    if verdict == "ask":
        step_event(ctx, run, step_id, "waiting")
        return {"run_id": run_id, "step": step_id, "outcome": "asked a person"}
    outcome = _execute(ctx, run, step_id, op_id, progress)
    run, decided = store.update(
        run_id, lambda r: _record(r, step_id, op_id, outcome, ctx.clock()), durable=True
    )
    step_event(ctx, run, step_id, decided)
    advance(ctx, run_id, submit=submit)
    return {"run_id": run_id, "step": step_id, "outcome": decided}


@dataclass
class _Outcome:
    ok: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    probes: list[ProbeResult] = field(default_factory=list)
    message: str = ""
    hint: str | None = None
    transient: bool = False


def _execute(ctx: Context, run: RunState, step_id: str, op_id: str, progress: Any) -> _Outcome:
    step = run.runbook.step(step_id)
    try:
        if isinstance(step, CheckStep):
            return _check(ctx, run, step)
        assert isinstance(step, JobStep)
        call = runbook_ops.Call(
            ctx=ctx,
            run=run,
            step_id=step_id,
            operation=step.operation,
            params=run.resolved(step.params),
            progress=_Quiet(progress) if progress else (lambda *a, **k: None),
        )
        return _Outcome(ok=True, outputs=runbook_ops.execute(call, step.operation))
    except KosmosError as exc:
        return _Outcome(ok=False, message=exc.message, hint=exc.hint, transient=exc.transient)
    except Exception:  # noqa: BLE001 - the job's outer edge: log it, fail the step plainly
        log.exception("step failed with an internal error", run_id=run.run_id, step=step_id)
        return _Outcome(ok=False, message=f"internal error, operation {op_id}")


class _Quiet:
    """A step's progress reporter that a Redis blink cannot turn into the step's failure."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress

    def __call__(self, phase: str, **values: Any) -> None:
        """Report, or log that Redis did not take the report."""
        try:
            self.progress(phase, **values)
        except redis.exceptions.RedisError as exc:
            log.warning("step progress not reported", phase=phase, error=str(exc))


def _check(ctx: Context, run: RunState, step: CheckStep) -> _Outcome:
    from workers.runbooks.probes import run_probe

    results = []
    for probe in step.probes:
        resolved = type(probe).model_validate(run.resolved(probe.model_dump(mode="json")))
        results.append(run_probe(ctx, resolved))
    failed = [r for r in results if not r.ok]
    if not failed:
        return _Outcome(ok=True, outputs={"passed": len(results)}, probes=results)
    first = failed[0]
    more = f" (and {len(failed) - 1} more failed)" if len(failed) > 1 else ""
    return _Outcome(
        ok=False,
        probes=results,
        message=f"check failed: {first.label}: {first.detail}{more}",
        hint="see the step's probe results in the board's thread",
    )


def _record(run: RunState, step_id: str, op_id: str, outcome: _Outcome, now: datetime) -> str:
    state = run.steps[step_id]
    if state.status != StepStatus.RUNNING or state.op_id != op_id:
        return "stale"  # a person decided meanwhile, or the run was resumed elsewhere
    if outcome.ok:
        run.succeed(step_id, now, outputs=outcome.outputs, probes=outcome.probes)
        return "done"
    return run.fail(
        step_id,
        now,
        outcome.message,
        hint=outcome.hint,
        probes=outcome.probes,
        transient=outcome.transient,
    )
