"""Upkeep jobs: prune (retention), sweep (partial uploads), rpo-check (the monitor).

Also the abandoned-work reaper, which the scheduler's leader calls every tick: an operation
whose job stopped beating (its worker was SIGKILLed, its node lost) is failed, its lock freed,
its RQ job retired, and a sweep of its component enqueued.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog

from workers import components as engine
from workers.context import Context
from workers.core import rpo
from workers.core.durations import humanize
from workers.core.events import ChatContext, Event, EventType
from workers.core.ids import new_operation_id
from workers.core.operations import (
    OperationRequest,
    OperationState,
    PruneParams,
    SweepParams,
)
from workers.core.retention import Deletion
from workers.jobs.runner import JobRun, execute, hold_lock
from workers.restore.guard import worker_name
from workers.restore.requests import audit_of
from workers.state.redis_state import RedisState
from workers.storage.expiry import expire_backups

MIN_KEEP_LAST = 3
"""The generic prune never deletes the newest this-many good backups, whatever the config."""
MONITOR_LEASE = "job:rpo-check"


# -- prune --------------------------------------------------------------------------------------


def prune(payload: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: apply retention to the component (or every component); PruneParams."""
    return execute(payload, _prune, lock=False)


def _prune(run: JobRun) -> dict[str, Any]:
    dry_run = PruneParams.of(run.request).dry_run
    names = [run.request.component] if run.request.component else list(run.ctx.settings.components)
    deleted: list[Deletion] = []
    skipped: list[str] = []
    for name in names:
        with hold_lock(run, name) as held:
            if not held:
                skipped.append(name)
                run.note(f"{name}: skipped, a backup or verify holds it")
                continue
            found = prune_component(run.ctx, name, dry_run=dry_run)
        audit_of(run.ctx).record_deletions(found, worker_name(), run.ctx.clock())
        deleted += found
        if found:
            run.note(f"{name}: {'would delete' if dry_run else 'deleted'} {len(found)} backups")
    return {
        "dry_run": dry_run,
        "deleted": [d.model_dump(mode="json") for d in deleted],
        "count": len(deleted),
        "bytes": sum(d.size for d in deleted),
        "skipped": skipped,
    }


def prune_component(ctx: Context, name: str, *, dry_run: bool) -> list[Deletion]:
    """One component's retention: the engine's prune, else the generic catalog policy."""
    facade = getattr(engine, "prune", None)
    if facade is not None:
        return list(facade(ctx, name, dry_run=dry_run))
    component = ctx.settings.component(name)
    return expire_backups(
        ctx.repo,
        name,
        now=ctx.clock(),
        retention=component.retention,
        keep_last=max(component.keep_last, MIN_KEEP_LAST),
        dry_run=dry_run,
    )


# -- sweep --------------------------------------------------------------------------------------


def sweep(payload: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: abort stale pending uploads and remove manifest-less backups.

    ``SweepParams.before`` sweeps what was started before that instant (the reaper's use:
    everything the dead job ``after_op`` left); otherwise what is older than ``jobs.sweep_age``.
    """
    return execute(payload, _sweep, lock=False)


def _sweep(run: JobRun) -> dict[str, Any]:
    params = SweepParams.of(run.request)
    settings = run.ctx.settings
    names = [run.request.component] if run.request.component else list(settings.components)
    older_than = settings.jobs.sweep_age
    if params.before is not None:
        older_than = max(timedelta(0), run.ctx.clock() - params.before)
    aborted: list[str] = []
    orphans: list[str] = []
    skipped: list[str] = []
    for name in names:
        # Under the component's lock: an upload in flight is never mistaken for a stale one
        # (some stores, moto among them, do not report when an upload began).
        with hold_lock(run, name) as held:
            if not held:
                skipped.append(name)
                continue
            report = run.ctx.repo.sweep(older_than, [name])
        aborted += report.aborted_uploads
        orphans += report.orphan_backups
    return {
        "aborted_uploads": aborted,
        "orphan_backups": orphans,
        "skipped": skipped,
        "older_than_seconds": int(older_than.total_seconds()),
        "after_op": params.after_op,
    }


# -- rpo-check ----------------------------------------------------------------------------------


def rpo_check(payload: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: the RPO monitor; emits one alert per breach and one recovery."""
    return execute(payload, _rpo_check, lock=False)


def _rpo_check(run: JobRun) -> dict[str, Any]:
    with hold_lock(run, MONITOR_LEASE) as held:
        if not held:
            return {"skipped": "another monitor run is in progress"}
        return check_rpo(run.ctx, run.state)


def check_rpo(ctx: Context, state: RedisState) -> dict[str, Any]:
    """Evaluate every component and emit the monitor's alert/recovered events."""
    now = ctx.clock()
    statuses = engine.status(ctx)
    decisions, states = rpo.evaluate(
        state.alert_states(), statuses, state.consecutive_failures(), now, new_operation_id
    )
    chat = ChatContext(
        source="monitor", channel=ctx.settings.slack.alert_channel or ctx.settings.slack.channel
    )
    by_name = {s.name: s for s in statuses}
    for decision in decisions:
        status = by_name[decision.component]
        lag = rpo.wal_archive_lag(status, now)
        state.append_event(
            Event(
                op_id=decision.op_id,
                type=EventType.ALERT if decision.type == "alert" else EventType.RECOVERED,
                at=now,
                operation="rpo-check",
                component=decision.component,
                chat=chat,
                message=decision.message,
                hint=decision.hint or None,
                suggestion=decision.suggestion,
                summary={
                    "cause": decision.cause,
                    "age_seconds": status.age_seconds,
                    "rpo_seconds": status.rpo_seconds,
                    "wal_archive_lag_seconds": lag,
                },
            )
        )
    state.save_alert_states(states)
    open_alerts = sorted(name for name, s in states.items() if s.active)
    return {"alerts": [d.component for d in decisions if d.type == "alert"], "open": open_alerts}


# -- abandoned work -----------------------------------------------------------------------------


AFTER_A_DEATH = {
    "backup": "its partial upload is swept; the next run starts afresh",
    "restore": "nothing it restored was committed; a database it created is left empty, "
    "and the next restore into it says so (--in-place reuses it)",
    "verify": "nothing was recorded; verify again",
    "dr-step": "the step failed with it; the runbook run goes on as the step's on-failure "
    "says (/dr retry <step> where it asks)",
}
"""What the reaper tells about an operation whose worker died, by kind."""


def reap_abandoned(ctx: Context, state: RedisState) -> list[dict[str, Any]]:
    """Fail every running operation whose heartbeat stopped; return what was reaped."""
    now = state.server_time()  # the clock the heartbeats were written with
    reaped = []
    for op_id, last_beat in state.stale_running(now - ctx.settings.jobs.abandoned_after):
        record = state.operation(op_id)
        if record is None or record["state"] != OperationState.RUNNING.value:
            state.stop_beating(op_id)
            continue
        if _fail_abandoned(ctx, state, record, last_beat, now):
            reaped.append({**record, "last_beat": last_beat.isoformat()})
    return reaped


def _fail_abandoned(
    ctx: Context, state: RedisState, record: dict[str, Any], last_beat: datetime, now: datetime
) -> bool:
    request = OperationRequest.model_validate(record["request"])
    worker = record.get("worker") or "unknown"
    kind = request.kind.value
    what = f"{kind} of {request.component}" if request.component else kind
    message = (
        f"worker {worker} died while running {what} "
        f"(no heartbeat for {humanize((now - last_beat).total_seconds())})"
    )
    event = Event(
        op_id=request.op_id,
        type=EventType.FAILED,
        at=now,
        operation=request.kind.value,
        component=request.component,
        chat=request.chat,
        error_class="WorkerLost",
        message=message,
        hint=AFTER_A_DEATH.get(kind, "nothing was left half-done; run it again"),
    )
    fields = {"ended_at": now.isoformat(), "error": message}
    appended = state.append_event(
        event, state=OperationState.FAILED, only_from=(OperationState.RUNNING,), fields=fields
    )
    state.stop_beating(request.op_id)
    if appended is None:
        return False  # it ended on its own meanwhile
    if request.component and request.kind.value != "backup":
        # A dead backup's lock is kept (it lapses by its TTL) so that the scheduler can
        # hand it to the sweep of what that backup left; nothing else may upload meanwhile.
        state.release(request.component, request.op_id)
    state.record_outcome(request.kind.value, request.component, ok=False)
    _retire_rq_job(ctx, request.op_id, message)
    structlog.get_logger("kosmos.reaper").warning(
        "abandoned operation failed", op_id=request.op_id, worker=worker, reason=message
    )
    return True


def _retire_rq_job(ctx: Context, job_id: str, reason: str) -> None:
    """Mark the dead worker's RQ job failed now, so RQ's own (slow) cleanup never retries it.

    If that cleanup saw the dead worker first, it has already scheduled (or queued) a retry:
    the runner would only log that the operation ended, so the retry is taken back as well.
    """
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus
    from rq.job_lifecycle import record_job_failure
    from rq.queue import Queue
    from rq.registry import ScheduledJobRegistry

    try:
        job = Job.fetch(job_id, connection=ctx.redis)
    except NoSuchJobError:
        return
    status = job.get_status()
    if status not in (JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.QUEUED):
        return
    job.retries_left = 0
    try:
        with ctx.redis.pipeline() as pipe:
            if status == JobStatus.STARTED:
                job.started_job_registry.remove_executions(job, pipeline=pipe)
            elif status == JobStatus.SCHEDULED:
                ScheduledJobRegistry(job.origin, connection=ctx.redis).remove(job, pipeline=pipe)
            else:
                Queue(job.origin, connection=ctx.redis).remove(job, pipeline=pipe)
            record_job_failure(job, reason, pipe)
            pipe.execute()
    except Exception:  # noqa: BLE001 - RQ's bookkeeping is a courtesy; our op is already failed
        structlog.get_logger("kosmos.reaper").warning("could not retire RQ job", job_id=job_id)
