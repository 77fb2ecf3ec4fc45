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

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from workers.context import Context
from workers.core.errors import ConflictError, UsageError
from workers.core.events import ChatContext, EventType
from workers.core.ids import new_operation_id
from workers.core.operations import DrStepParams, OperationKind
from workers.core.run_start import inputs_of, new_run
from workers.core.runbook import JobStep, Runbook, StepKind, StepMode
from workers.core.runbook_run import (
    Awaiting,
    RunState,
)
from workers.runbooks import gates
from workers.runbooks import operations as runbook_ops
from workers.runbooks.files import find_runbook, load_runbook, runbook_dir
from workers.runbooks.runs import (
    REPORT_STEP,
    Submit,
    current,
    emit,
    load,
    log,
    new_run_id,
    runs,
    step_chat,
    step_event,
)

# -- starting and advancing ------------------------------------------------------------------


def check_start(ctx: Context, name: str, params: dict[str, str]) -> Runbook:
    """The checks a start makes before any I/O beyond the file: runbook, parameters."""
    path = find_runbook(runbook_dir(ctx.settings.dr.runbooks_dir), name)
    runbook = load_runbook(path).runbook
    inputs_of(runbook, params)
    return runbook


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
    failed = [step_id for step_id in gated if gates.open_gate(ctx, run, step_id) is None]
    if failed:
        return advance(ctx, run_id)  # the failed gates' policies may start or end steps
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
    return _by_person(ctx, run_id, step_id, RunState.confirm, action, by, note, submit)


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
    return _by_person(ctx, run_id, step_id, RunState.decide, decision, by, note, submit)


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
    transition: Callable[..., str],
    what: str,
    by: str,
    note: str | None,
    submit: Submit | None,
) -> RunState:
    """Apply a person's answer through the state machine, report it, move the run on."""
    now = ctx.clock()
    run, result = runs(ctx).update(
        run_id, lambda r: transition(r, step_id, what, by=by, note=note, now=now)
    )
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


def follow_gates(ctx: Context, run_id: str) -> None:
    """Move gated steps along with their restore requests and jobs, then the run."""
    if gates.follow_gates(ctx, run_id):
        advance(ctx, run_id)


def set_board(ctx: Context, run_id: str, channel: str, ts: str) -> RunState:
    """Remember the board message, whose thread holds the steps' details."""

    run, _ = runs(ctx).update(run_id, lambda r: r.set_board(channel, ts))
    return run
