"""DR durability around the flow: reports, resuming after crashes, the monthly drill.

``finish`` builds the report of an ended run (Markdown, PNG timeline, JSON summary), stores
it under ``_dr/<run-id>/`` and emits the run's final event, which the bot turns into a
channel post with the chart uploaded. ``resume`` continues a run after a worker, bot or
Redis was lost. ``upkeep`` is what the scheduler's leader calls each tick: it resumes runs
whose step workers died and starts ``dr-test`` when a drill is due. ``LocalRunner`` runs
steps in the calling process (the CLI's ``--local``).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from workers.context import Context
from workers.core.errors import KosmosError, UsageError
from workers.core.events import ChatContext, EventType
from workers.core.ids import new_operation_id
from workers.core.run_resume import ResumeAction, resume_plan
from workers.core.runbook_run import RunState
from workers.runbooks import flow as runbook_flow
from workers.runbooks import steps
from workers.runbooks.files import Checked, Located
from workers.runbooks.flow import REPORT_STEP, Submit, runs
from workers.state.redis_state import RedisState

log = structlog.get_logger("kosmos.dr")
DRILL_STARTED = "drill-started"


def finish(ctx: Context, run_id: str) -> dict[str, Any]:
    """Build, store and announce the report of an ended run; return its summary."""
    from workers.runbooks.report import build_report, drill_summary, headline

    store = runs(ctx)
    run = store.load(run_id)
    report = build_report(run, ctx.clock())
    files = {
        "markdown": store.put_artifact(run_id, "report.md", report.markdown.encode()),
        "chart": store.put_artifact(run_id, "report.png", report.png),
        "summary": store.put_artifact(
            run_id, "report.json", json.dumps(report.summary, indent=1).encode()
        ),
    }
    summary = {
        **report.summary,
        "files": files,
        "stored_in": store.store.describe(),
        "headline": headline(report.summary),
    }

    def record(state: RunState) -> None:
        state.report = summary

    run, _ = store.update(run_id, record)
    if run.runbook.drill:
        store.save_last_drill(drill_summary(report.summary))
    kind = EventType.FINISHED if run.status.value == "done" else EventType.FAILED
    runbook_flow.emit(
        ctx,
        run,
        kind,
        summary={k: v for k, v in summary.items() if k != "steps"},
        message=summary["headline"] if kind == EventType.FAILED else None,
        hint=run.failure if kind == EventType.FAILED else None,
    )
    log.info("run report stored", run_id=run_id, result=run.status.value, files=files)
    return summary


def runbook_usage(ctx: Context) -> list[tuple[str, str]]:
    """``/dr start`` of every runbook there is, and what it does: lines for ``/dr help``."""
    from workers.runbooks.files import load_runbook, runbook_dir, runbook_files

    lines = []
    for path in runbook_files(runbook_dir(ctx.settings.dr.runbooks_dir)):
        try:
            runbook = load_runbook(path).runbook
        except KosmosError as exc:
            lines.append((f"/dr start {path.stem}", f"does not load: {exc.message}"[:200]))
            continue
        needed = [f"--param {n}=…" for n, spec in runbook.inputs.items() if spec.required]
        optional = [n for n, spec in runbook.inputs.items() if not spec.required]
        summary = runbook.title + (" (a drill)" if runbook.drill else "")
        if optional:
            summary += f"; optional: {', '.join(optional)}"
        lines.append((" ".join([f"/dr start {runbook.name}", *needed]), summary))
    return lines


def check_runbooks(ctx: Context, files: list[Path]) -> tuple[list[Checked], list[Located]]:
    """Check runbook files (default: every one configured) against what this build offers.

    Returns the runbooks that loaded and every problem found, each naming file, line and step.
    """
    from workers.runbooks import operations as runbook_ops
    from workers.runbooks.files import check_files, runbook_dir, runbook_files

    paths = files or runbook_files(runbook_dir(ctx.settings.dr.runbooks_dir))
    if not paths:
        raise UsageError("no runbook files to check", hint="name a FILE, or set dr.runbooks_dir")
    return check_files(
        paths,
        available=lambda op: runbook_ops.available(ctx, op),
        objective=ctx.settings.objectives.rto,
    )


def drill_due(ctx: Context, now: datetime) -> tuple[bool, str]:
    """Whether the scheduler should start ``dr-test`` now, and why (not)."""
    settings = ctx.settings.dr
    if not settings.dr_test_enabled:
        return False, "drills are disabled"
    store = runs(ctx)
    for run in store.recent(20):
        if run.runbook.drill and not run.finished:
            return False, f"drill {run.run_id} is still running"
    raw = store.client.get(store.key(DRILL_STARTED))
    if raw is None:
        last = store.last_drill()
        started = (last or {}).get("finished_at")
        if started is None:
            # First sight of drills: count the cycle from now rather than drill at once
            # on the first tick after an upgrade.
            store.client.set(store.key(DRILL_STARTED), now.isoformat())
            return False, "first drill due one period from now"
        raw = started
    previous = datetime.fromisoformat(raw.decode() if isinstance(raw, bytes) else str(raw))
    due_at = previous + settings.dr_test_frequency
    if now < due_at:
        return False, f"next drill at {due_at.isoformat()}"
    return True, f"due since {due_at.isoformat()}"


def upkeep(ctx: Context) -> list[str]:
    """Start a due drill and resume runs with lost steps; return the run ids acted on."""
    acted: list[str] = []
    try:
        acted += _watch(ctx)
        due, reason = drill_due(ctx, ctx.clock())
        if due:
            channel = ctx.settings.dr.channel or ctx.settings.slack.channel
            run = runbook_flow.start(
                ctx,
                ctx.settings.dr.dr_test_runbook,
                dict(ctx.settings.dr.dr_test_params),
                started_by="scheduler",
                chat=ChatContext(source="scheduler", channel=channel),
            )
            log.info("monthly drill started", run_id=run.run_id, reason=reason)
            acted.append(run.run_id)
    except KosmosError as exc:
        log.warning("dr upkeep failed", error=exc.message)
    return acted


def _watch(ctx: Context) -> list[str]:
    """Resume runs whose automated steps lost their worker (or whose report was lost)."""
    resumed = []
    for run in runs(ctx).recent(20):
        if run.finished:
            continue
        runbook_flow.follow_gates(ctx, run.run_id)
        run = runs(ctx).load(run.run_id)
        # A step started moments ago may not be enqueued yet: give it the reaper's grace.
        grace = ctx.clock() - ctx.settings.jobs.abandoned_after
        lost = [
            sid
            for sid in run.running()
            if run.steps[sid].awaiting is None
            and (run.steps[sid].attempt_at or grace) <= grace
            and not step_alive(ctx, run.steps[sid].op_id)
        ]
        if lost:
            resume(ctx, run.run_id)
            resumed.append(run.run_id)
    return resumed


class LocalRunner:
    """Runs steps in this process instead of enqueueing them (``--local``, no workers)."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str]] = []

    def __call__(self, ctx: Context, run: RunState, step_id: str, op_id: str) -> None:
        """Queue a step here (the Submit signature)."""
        self.pending.append((step_id, op_id))

    def drain(self, ctx: Context, run_id: str) -> RunState:
        """Run queued steps until the run waits for a person or ends."""
        while self.pending:
            step_id, op_id = self.pending.pop(0)
            if step_id == REPORT_STEP:
                finish(ctx, run_id)
            else:
                steps.run_step(ctx, run_id, step_id, op_id, submit=self)
        return runs(ctx).load(run_id)


def resume(
    ctx: Context, run_id: str, *, submit: Submit | None = None
) -> tuple[RunState, list[ResumeAction]]:
    """Continue a run after a crash: from storage if Redis lost it; lost steps requeued or asked."""
    store = runs(ctx)
    # Redis may hold no copy, or an older one (restarted from a snapshot): take the newest.
    run = store.newest(run_id)
    send = submit or runbook_flow.submit_step
    if run.finished:
        if not run.report:
            send(ctx, run, REPORT_STEP, new_operation_id(ctx.clock()))
        return run, []
    alive = {sid for sid in run.running() if step_alive(ctx, run.steps[sid].op_id)}
    run, actions = store.update(run_id, lambda r: resume_plan(r, alive), durable=True)
    for action in actions:
        if action.action != "keep":
            runbook_flow.step_event(ctx, run, action.step, f"resumed: {action.action}")
    log.info("run resumed", run_id=run_id, actions=[a.model_dump() for a in actions])
    return runbook_flow.advance(ctx, run_id, submit=submit), actions


def step_alive(ctx: Context, op_id: str | None) -> bool:
    """Whether the job of a running step is queued or beating (not lost with a worker)."""
    if op_id is None:
        return False
    state = RedisState(ctx.redis, ctx.settings.redis.key_prefix)
    record = state.operation(op_id)
    if record is None:
        # Redis lost the operation's record (flushed, or restarted empty) while its job went
        # on: the job's heartbeat, written again at each beat, still tells.
        return _beating(ctx, state, op_id)
    if record.get("state") not in ("queued", "running"):
        return False
    if record["state"] == "queued":
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        try:
            return Job.fetch(op_id, connection=ctx.redis).get_status() is not None
        except NoSuchJobError:
            return False
    return _beating(ctx, state, op_id)


def _beating(ctx: Context, state: RedisState, op_id: str) -> bool:
    silent_since = ctx.clock() - ctx.settings.jobs.abandoned_after
    stale = {op for op, _ in state.stale_running(silent_since)}
    beating = ctx.redis.zscore(state.key("running"), op_id) is not None
    return beating and op_id not in stale
