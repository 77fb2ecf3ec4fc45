"""A runbook run's place in the world: its store, its runbook file, its events, its id.

What the flow (``workers.runbooks.flow``), its approval gates (``workers.runbooks.gates``)
and the doors share; it never moves a run forward itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from workers.context import Context
from workers.core.errors import NotFoundError
from workers.core.events import ChatContext, Event, EventType
from workers.core.operations import OperationKind
from workers.core.runbook_run import RunState
from workers.runbooks import operations as runbook_ops
from workers.runbooks.files import Checked, find_runbook, load_runbook, runbook_dir
from workers.state.redis_state import RedisState
from workers.state.runbook_store import RunStore

OPERATION = OperationKind.DR_STEP.value
REPORT_STEP = "_report"
log = structlog.get_logger("kosmos.dr")
Submit = Callable[[Context, RunState, str, str], None]
"""Enqueues one step: (ctx, run, step id, operation id); tests and ``--local`` pass their own."""


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


def step_chat(run: RunState) -> ChatContext:
    """The chat context of a run's own events: the board's thread, source ``runbook``."""
    return run.chat.model_copy(update={"source": "runbook", "thread_ts": run.board_ts})


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
