"""Runbook runs, orchestrated: start, advance, confirm, decide, abort, resume, report.

Every change is a pure transition of :class:`RunState` applied under the run's lock by the
RunStore (Redis, written through to storage). Automated steps run as one RQ job each
(``dr-step`` operations); when a step ends, its job advances the run, which starts
whatever became runnable. Manual steps and approvals wait for a person. Each change emits
an event on the run's own operation id (the run id, ``operation="dr-step"``) carrying the
run's chat context, which the bot's DR board renders; the generic relay leaves them alone
(their source is ``runbook``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
import structlog

from workers import runbook_ops
from workers.adapters.runbook_files import Checked, find_runbook, load_runbook, runbook_dir
from workers.context import Context
from workers.core.errors import ConflictError, KosmosError, NotFoundError, UsageError
from workers.core.events import ChatContext, Event, EventType
from workers.core.ids import new_operation_id
from workers.core.operations import DrStepParams, OperationKind
from workers.core.runbook import CheckStep, JobStep, Runbook, StepKind, StepMode
from workers.core.runbook_run import (
    Awaiting,
    ProbeResult,
    RunState,
    StepStatus,
    inputs_of,
    new_run,
)
from workers.state.redis_state import RedisState
from workers.state.runbook_store import RunStore

OPERATION = OperationKind.DR_STEP.value
REPORT_STEP = "_report"
log = structlog.get_logger("kosmos.dr")
Submit = Callable[[Context, RunState, str, str], None]


def new_run_id(now: datetime) -> str:
    """A run id such as ``dr-20261124T030000Z-7f3a``."""
    return f"dr-{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(2)}"


def runs(ctx: Context) -> RunStore:
    """The run store of this deployment."""
    return RunStore(ctx.redis, ctx.repo.store, ctx.settings.redis.key_prefix)


def load(ctx: Context, name: str) -> Checked:
    """The named runbook, validated, with how each step runs in this build."""
    path = find_runbook(runbook_dir(ctx.settings.dr.runbooks_dir), name)
    return load_runbook(
        path,
        available=lambda op: runbook_ops.available(ctx, op),
        objective=ctx.settings.objectives.rto,
    )


def check_start(ctx: Context, name: str, params: dict[str, str]) -> Runbook:
    """The checks a start makes before any I/O beyond the file: runbook, parameters."""
    path = find_runbook(runbook_dir(ctx.settings.dr.runbooks_dir), name)
    runbook = load_runbook(path).runbook
    inputs_of(runbook, params)
    return runbook


# -- starting and advancing ------------------------------------------------------------------


def start(
    ctx: Context,
    name: str,
    params: dict[str, str],
    *,
    started_by: str,
    chat: ChatContext | None = None,
    submit: Submit | None = None,
) -> RunState:
    """Start a run of runbook ``name``; its first steps are enqueued at once."""
    checked = load(ctx, name)
    runbook = checked.runbook
    store = runs(ctx)
    chat = chat or ChatContext()
    if chat.channel:
        current = store.active(chat.channel)
        if current and store.exists(current) and not store.load(current).finished:
            raise ConflictError(
                f"run {current} is still going in this channel",
                hint="finish it, or /dr abort -- <reason>, before starting another",
            )
    safe = {
        s.id: runbook_ops.safe_to_repeat(s.operation)
        if s.safe_to_repeat is None
        else s.safe_to_repeat
        for s in runbook.steps
        if isinstance(s, JobStep)
    }
    now = ctx.clock()
    state = new_run(
        runbook,
        run_id=new_run_id(now),
        params=params,
        started_by=started_by,
        now=now,
        rto=runbook.rto or ctx.settings.objectives.rto,
        rpo=ctx.settings.objectives.rpo,
        modes=checked.modes,
        safe=safe,
        chat=chat,
    )
    store.create(state)
    if runbook.drill:
        store.client.set(store.key("drill-started"), now.isoformat())
    emit(ctx, state, EventType.ACCEPTED, note=f"{runbook.title} started by {started_by}")
    log.info("run started", run_id=state.run_id, runbook=name, by=started_by)
    return advance(ctx, state.run_id, submit=submit)


@dataclass
class _Advance:
    submissions: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    ended: bool = False


def advance(ctx: Context, run_id: str, *, submit: Submit | None = None) -> RunState:
    """Start every runnable step (skip, wait for a person, or enqueue); end the run when done."""
    now = ctx.clock()

    def change(run: RunState) -> _Advance:
        result = _Advance()
        progressed = True
        while progressed:
            progressed = False
            for step_id in run.next_runnable():
                progressed |= _begin(run, step_id, now, result)
        result.ended = run.settle(now)
        return result

    run, result = runs(ctx).update(run_id, change)
    for step_id, status in result.notes:
        step_event(ctx, run, step_id, status)
    for step_id, op_id in result.submissions:
        (submit or submit_step)(ctx, run, step_id, op_id)
    gated = [s for s, what in result.notes if what == "waiting" and _gated(run, s)]
    if gated:
        from workers.runbook_gates import open_gate

        for step_id in gated:
            open_gate(ctx, run, step_id)
    if result.ended:
        log.info("run ended", run_id=run_id, status=run.status.value)
        (submit or submit_step)(ctx, run, REPORT_STEP, new_operation_id(now))
    return run


def _gated(run: RunState, step_id: str) -> bool:
    step = run.runbook.step(step_id)
    return (
        isinstance(step, JobStep) and step.approval and run.steps[step_id].mode.value == "automated"
    )


def _begin(run: RunState, step_id: str, now: datetime, result: _Advance) -> bool:
    """Start one runnable step; True when it ended at once (so more may be runnable)."""
    step, state = run.runbook.step(step_id), run.steps[step_id]
    if state.mode == StepMode.SKIPPED:
        engine = step.operation.split(".")[0] if isinstance(step, JobStep) else step.kind
        run.skip(step_id, now, by=None, reason=f"no {engine} engine in this build yet")
        result.notes.append((step_id, "skipped"))
        return True
    if state.mode == StepMode.MANUAL or step.kind == StepKind.APPROVAL:
        run.start(step_id, now)
        result.notes.append((step_id, "waiting"))
        return False
    op_id = new_operation_id(now)
    started = run.start(step_id, now, op_id)
    if started.awaiting == Awaiting.APPROVAL:
        result.notes.append((step_id, "waiting"))
    else:
        result.submissions.append((step_id, op_id))
        result.notes.append((step_id, "running"))
    return False


def submit_step(ctx: Context, run: RunState, step_id: str, op_id: str) -> None:
    """Enqueue one step (or the report) as its own RQ job."""
    from workers import queues

    step = run.runbook.step(step_id) if step_id != REPORT_STEP else None
    queue = None
    if isinstance(step, JobStep):
        queue = runbook_ops.queue_of(ctx, step.operation, run.resolved(step.params))
    request = queues.new_request(
        OperationKind.DR_STEP,
        None,
        params=DrStepParams(run_id=run.run_id, step_id=step_id, queue=queue or None),
        chat=step_chat(run),
        requested_by=run.started_by,
        now=ctx.clock(),
    ).model_copy(update={"op_id": op_id})
    queues.submit(ctx.redis, ctx.settings, request)


def step_chat(run: RunState) -> ChatContext:
    """The chat context of a run's own events: the board's thread, source ``runbook``."""
    return run.chat.model_copy(update={"source": "runbook", "thread_ts": run.board_ts})


# -- executing one step ----------------------------------------------------------------------


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
    from workers.adapters.probes import run_probe

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


# -- people ----------------------------------------------------------------------------------


def confirm(
    ctx: Context,
    run_id: str,
    step_id: str,
    action: str,
    *,
    by: str,
    note: str | None = None,
    submit: Submit | None = None,
) -> RunState:
    """A person's Done / Skip (reason) / Failed (note) on a manual step."""
    now = ctx.clock()
    return _by_person(
        ctx,
        run_id,
        step_id,
        lambda r: r.confirm(step_id, action, by=by, note=note, now=now),
        by=by,
        submit=submit,
    )


def decide(
    ctx: Context,
    run_id: str,
    step_id: str,
    decision: str,
    *,
    by: str,
    note: str | None = None,
    submit: Submit | None = None,
) -> RunState:
    """A person's decision on a step that asked: retry, done, skip (reason) or fail."""
    now = ctx.clock()
    return _by_person(
        ctx,
        run_id,
        step_id,
        lambda r: r.decide(step_id, decision, by=by, note=note, now=now),
        by=by,
        submit=submit,
    )


def answer(
    ctx: Context,
    run_id: str,
    step_id: str,
    what: str,
    *,
    by: str,
    note: str | None = None,
    submit: Submit | None = None,
) -> RunState:
    """A person's answer by name, whatever the step waits for: the buttons, typed.

    A manual step takes done, skip (reason) or failed (note); a step that asks after a
    failure or a crash takes retry, done, skip (note) or fail.
    """
    awaiting = current(ctx, None, run_id).step_run(step_id).awaiting
    if awaiting == Awaiting.DECISION:
        decision = {"failed": "fail"}.get(what, what)
        return decide(ctx, run_id, step_id, decision, by=by, note=note, submit=submit)
    action = {"fail": "failed"}.get(what, what)
    return confirm(ctx, run_id, step_id, action, by=by, note=note, submit=submit)


def _by_person(
    ctx: Context,
    run_id: str,
    step_id: str,
    change: Any,
    *,
    by: str,
    submit: Submit | None,
) -> RunState:
    """Apply a person's change to a step, report it, and move the run on."""
    run, result = runs(ctx).update(run_id, change)
    step_event(ctx, run, step_id, result, by=by)
    return advance(ctx, run_id, submit=submit)


def approved(ctx: Context, run_id: str, step_id: str, *, approval_id: str, by: str) -> RunState:
    """An approval gate opened: the gate step is done, or the gated job is enqueued."""
    now = ctx.clock()
    run, result = runs(ctx).update(
        run_id, lambda r: r.approved(step_id, now, approval_id=approval_id, by=by)
    )
    step_event(ctx, run, step_id, "approved", by=by)
    if result == "run":
        op_id = run.steps[step_id].op_id
        assert op_id is not None
        submit_step(ctx, run, step_id, op_id)
        return run
    return advance(ctx, run_id)


def approve_gate(ctx: Context, run_id: str, step_id: str, *, by: str) -> RunState:
    """A person holding the approvers role approves an ``approval`` step (two-person rule)."""
    now = ctx.clock()

    def change(run: RunState) -> str:
        step = run.runbook.step(step_id)
        component = getattr(step, "component", None)
        settings = ctx.settings.components.get(component) if component else None
        required = settings.approvers_required if settings is not None else 1
        return run.approve_gate(step_id, now, by=by, required=required)

    run, result = runs(ctx).update(run_id, change)
    step_event(ctx, run, step_id, "approved" if result == "done" else "approval noted", by=by)
    return advance(ctx, run_id) if result == "done" else run


def abort(
    ctx: Context, run_id: str, *, by: str, reason: str, submit: Submit | None = None
) -> RunState:
    """Stop the run: waiting steps are skipped, teardown (``always``) steps still run."""
    now = ctx.clock()
    run, _ = runs(ctx).update(run_id, lambda r: r.abort(by=by, reason=reason, now=now))
    emit(ctx, run, EventType.NOTE, note=f"run aborted by {by}: {reason}")
    return advance(ctx, run_id, submit=submit)


def set_board(ctx: Context, run_id: str, channel: str, ts: str) -> RunState:
    """Remember the board message, whose thread holds the steps' details."""

    def change(run: RunState) -> None:
        run.board_ts = ts
        run.chat = run.chat.model_copy(update={"channel": channel})

    run, _ = runs(ctx).update(run_id, change)
    return run


def current(ctx: Context, place: str | None, run_id: str | None = None) -> RunState:
    """The named run, or the newest of a place (a channel, the console); NotFoundError else."""
    store = runs(ctx)
    if run_id is None and place:
        run_id = store.active(place)
    if run_id is None:
        raise NotFoundError("no runbook run here yet", hint="/dr start <runbook>")
    if not store.exists(run_id):
        return store.restore(run_id)
    return store.load(run_id)


# -- events ----------------------------------------------------------------------------------


def emit(ctx: Context, run: RunState, kind: EventType, **values: Any) -> None:
    event = Event(
        op_id=run.run_id,
        type=kind,
        at=ctx.clock(),
        operation=OPERATION,
        chat=step_chat(run),
        **values,
    )
    try:
        RedisState(ctx.redis, ctx.settings.redis.key_prefix).append_event(event)
    except Exception as exc:  # noqa: BLE001 - the board lags; the run's state is what counts
        log.warning("run event not emitted", run_id=run.run_id, error=str(exc))


def step_event(ctx: Context, run: RunState, step_id: str, what: str, by: str | None = None) -> None:
    state = run.steps[step_id]
    title = run.runbook.step(step_id).title
    note = f"{title}: {what}" + (f" ({by})" if by else "")
    emit(
        ctx,
        run,
        EventType.NOTE,
        phase=step_id,
        note=note,
        summary={"step": step_id, "status": state.status.value, "what": what},
    )


def usage_params(pairs: list[str]) -> dict[str, str]:
    """``["k=v", …]`` from ``--param`` options as a dict; UsageError on a malformed one."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise UsageError(
                f"--param {pair!r} is not name=value", hint="e.g. --param backup=latest"
            )
        params[name.strip()] = value
    return params
