"""The life of one job: lock, heartbeat, started/progress/finished/failed events, retries.

Every job entry point hands its body to :func:`execute`. RQ's ``Retry`` would retry any
exception, so the filter lives here: a transient fault (storage unreachable, a connection
reset) is re-raised with the retry budget intact and RQ schedules the next attempt; any other
failure first zeroes the job's ``retries_left``, then is re-raised, so RQ records it as failed
and never retries it. A payload whose parameters do not fit its kind's model is failed the
same way, before anything runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
import structlog
from pydantic import ValidationError
from rq import get_current_job
from rq.timeouts import JobTimeoutException

from workers.context import Context
from workers.core.errors import ConflictError, KosmosError, UsageError
from workers.core.events import ChatContext, Event, EventType
from workers.core.operations import OperationRequest, OperationState, describe
from workers.jobs.redaction import Redactor
from workers.settings import load_settings
from workers.state.redis_state import Heartbeat, RedisState

PROGRESS_INTERVAL = 1.0
"""Seconds between progress events of one phase: Slack and the stream need no more."""

_ACTIVE = (OperationState.QUEUED, OperationState.RUNNING)
_TERMINAL = {OperationState.FINISHED.value, OperationState.FAILED.value}
_TRANSIENT = (ConnectionError, TimeoutError, redis.exceptions.ConnectionError)

Body = Callable[["JobRun"], dict[str, Any]]


def is_transient(exc: BaseException) -> bool:
    """Whether retrying could help: storage unreachable, a connection reset or timed out."""
    if isinstance(exc, KosmosError):
        return exc.transient
    if isinstance(exc, JobTimeoutException):
        return False
    return isinstance(exc, _TRANSIENT)


@dataclass
class JobRun:
    """What a job body gets: the context, its request, and ways to report."""

    ctx: Context
    request: OperationRequest
    state: RedisState
    redactor: Redactor
    log: Any
    progress: ProgressRelay = field(init=False)

    def __post_init__(self) -> None:
        self.progress = ProgressRelay(self)

    @property
    def quiet(self) -> bool:
        """Quiet operations (the minutely monitor) keep out of the stream and the registry."""
        return self.request.quiet

    def emit(
        self,
        kind: EventType,
        *,
        state: OperationState | None = None,
        only_from: tuple[OperationState, ...] = (),
        fields: dict[str, str] | None = None,
        **values: Any,
    ) -> str | None:
        """Append one event of this operation (secrets redacted); None if the state forbade it."""
        if self.quiet:
            return None
        for name in ("message", "hint", "note"):
            if isinstance(values.get(name), str):
                values[name] = self.redactor(values[name])
        event = Event(
            op_id=self.request.op_id,
            type=kind,
            at=self.ctx.clock(),
            operation=self.request.kind.value,
            component=self.request.component,
            chat=self.request.chat,
            **values,
        )
        return self.state.append_event(event, state=state, only_from=only_from, fields=fields)

    def note(self, text: str) -> None:
        """A step note for the operation's thread."""
        self.emit(EventType.NOTE, note=text)


class ProgressRelay:
    """The engine's Progress callback: notes pass through, progress is coalesced to ~1/s.

    A phase's last suppressed update is sent when the next phase begins, so a bar ends full.
    """

    def __init__(self, run: JobRun, interval: float = PROGRESS_INTERVAL) -> None:
        self.run = run
        self.interval = interval
        self._lock = threading.Lock()
        self._phase: str | None = None
        self._last = 0.0
        self._pending: tuple[str, int | None, int | None] | None = None

    def __call__(
        self,
        phase: str,
        *,
        done_bytes: int | None = None,
        total_bytes: int | None = None,
        note: str | None = None,
    ) -> None:
        """Report progress (see workers.core.ports.Progress)."""
        if note is not None:
            self.run.emit(EventType.NOTE, phase=phase, note=note)
            return
        with self._lock:
            now = time.monotonic()
            if phase == self._phase and now - self._last < self.interval:
                self._pending = (phase, done_bytes, total_bytes)
                return
            flush, self._pending = (self._pending if phase != self._phase else None), None
            self._phase, self._last = phase, now
        if flush is not None:
            self._send(*flush)
        self._send(phase, done_bytes, total_bytes)

    def _send(self, phase: str, done_bytes: int | None, total_bytes: int | None) -> None:
        percent = None
        if done_bytes is not None and total_bytes:
            percent = round(min(100.0, 100.0 * done_bytes / total_bytes), 1)
        self.run.emit(
            EventType.PROGRESS,
            phase=phase,
            done_bytes=done_bytes,
            total_bytes=total_bytes,
            percent=percent,
        )


def execute(payload: dict[str, Any], body: Body, *, lock: bool) -> dict[str, Any]:
    """Run ``body`` as operation ``payload`` (an OperationRequest as JSON) and report it."""
    ctx = Context(load_settings())
    state = RedisState(ctx.redis, ctx.settings.redis.key_prefix)
    try:
        request = OperationRequest.model_validate(payload)
    except ValidationError as exc:
        raise _refuse_payload(ctx, state, payload, exc) from None
    log = structlog.get_logger("kosmos.job").bind(
        op_id=request.op_id, kind=request.kind.value, component=request.component
    )
    run = JobRun(ctx, request, state, Redactor.from_settings(ctx.settings), log)
    record = state.operation(request.op_id)
    if record is not None and record["state"] in _TERMINAL:
        # A retry or a requeue of an operation that already ended (e.g. reaped): do nothing.
        log.warning("operation already ended; not running it again", state=record["state"])
        return {"skipped": True, "state": record["state"]}
    try:
        summary = _attempt(run, body, lock)
    except BaseException as exc:
        _failed(run, exc)
        raise
    ended = run.emit(
        EventType.FINISHED,
        state=OperationState.FINISHED,
        only_from=(OperationState.RUNNING,),
        summary=summary,
        fields=_ended_fields(run, summary=summary),
    )
    if ended is None and not run.quiet:
        log.warning("operation was failed meanwhile (abandoned-work sweep); result kept here")
    state.record_outcome(request.kind.value, request.component, ok=True)
    log.info("operation finished", **summary)
    return summary


def _refuse_payload(
    ctx: Context, state: RedisState, payload: Any, exc: ValidationError
) -> UsageError:
    """Fail an operation whose payload does not parse (never retried); the error to raise."""
    error = UsageError(
        f"the job's parameters were refused: {describe(exc)}",
        hint="the producer and this worker disagree on the operation's parameters: upgrade both",
    )
    job = get_current_job()
    if job is not None:
        job.retries_left = 0
    raw = payload if isinstance(payload, dict) else {}
    log = structlog.get_logger("kosmos.job").bind(op_id=raw.get("op_id"), kind=raw.get("kind"))
    log.error("operation refused: its payload does not parse", error=error.message)
    if not isinstance(raw.get("op_id"), str):
        return error
    try:
        chat = ChatContext.model_validate(raw.get("chat") or {})
    except ValidationError:
        chat = ChatContext()
    component = raw.get("component")
    event = Event(
        op_id=raw["op_id"],
        type=EventType.FAILED,
        at=ctx.clock(),
        operation=str(raw.get("kind") or "unknown"),
        component=component if isinstance(component, str) else None,
        chat=chat,
        error_class=type(error).__name__,
        message=error.message,
        hint=error.hint,
    )
    fields = {"ended_at": ctx.clock().isoformat(), "error": error.message}
    state.append_event(event, state=OperationState.FAILED, only_from=_ACTIVE, fields=fields)
    return error


def _attempt(run: JobRun, body: Body, lock: bool) -> dict[str, Any]:
    """Take the component lock, beat, report started, run the body; always let go."""
    request, state, settings = run.request, run.state, run.ctx.settings
    component = request.component if lock else None
    if component is not None:
        holder = state.acquire(component, request.op_id, settings.jobs.lock_ttl)
        if holder is not None:
            raise ConflictError(
                f"{component} is busy: {_describe_holder(state, holder)}",
                hint=f"wait for it to end (kosmos-backup ops {holder}), then try again",
            )
    heartbeat = Heartbeat(
        lambda: _beat(run, component), settings.jobs.heartbeat, name=f"heartbeat-{request.op_id}"
    ).start()
    try:
        job = get_current_job()
        attempt = attempt_of(job)
        run.emit(
            EventType.STARTED,
            state=OperationState.RUNNING,
            only_from=_ACTIVE,
            note=f"attempt {attempt}" if attempt > 1 else None,
            fields={
                "worker": (job.worker_name if job is not None else None) or "local",
                "host": socket.gethostname(),
                "pid": str(os.getpid()),
                "attempt": str(attempt),
                "started_at": run.ctx.clock().isoformat(),
            },
        )
        run.log.info("operation started", attempt=attempt)
        return body(run)
    finally:
        heartbeat.stop()
        state.stop_beating(request.op_id)
        if component is not None:
            state.release(component, request.op_id)


@contextlib.contextmanager
def hold_lock(run: JobRun, name: str) -> Iterator[bool]:
    """Hold lease ``name`` (renewed) for a block; yields False, holding nothing, when busy."""
    ttl = run.ctx.settings.jobs.lock_ttl
    owner = run.request.op_id
    if run.state.acquire(name, owner, ttl) is not None:
        yield False
        return

    def renew() -> None:
        if not run.state.renew(name, owner, ttl):
            run.log.warning("lease lost while held", lease=name)

    renewal = Heartbeat(renew, run.ctx.settings.jobs.heartbeat, name=f"lease-{name}").start()
    try:
        yield True
    finally:
        renewal.stop()
        run.state.release(name, owner)


def attempt_of(job: Any) -> int:
    """Which attempt of its job this run is (1 unless RQ is retrying it)."""
    if job is None or job.retries_left is None:
        return 1
    return int(job.meta.get("retry_max", 0)) - job.retries_left + 1


def _beat(run: JobRun, component: str | None) -> None:
    run.state.beat(run.request.op_id)
    if component is not None and not run.state.renew(
        component, run.request.op_id, run.ctx.settings.jobs.lock_ttl
    ):
        run.log.warning("component lock lost while running", lock=component)


def _describe_holder(state: RedisState, holder: str) -> str:
    record = state.operation(holder)
    if record is None:
        return f"{holder} holds its lock"
    return f"{record['kind']} {holder} is {record['state']}"


def _failed(run: JobRun, exc: BaseException) -> None:
    """Report a failure: a retry note while the transient budget lasts, else ``failed``."""
    job = get_current_job()
    retries_left = (job.retries_left or 0) if job is not None else 0
    transient = is_transient(exc)
    if transient and retries_left > 0:
        assert job is not None
        delay = job.get_retry_interval()
        message = exc.message if isinstance(exc, KosmosError) else str(exc) or type(exc).__name__
        run.emit(
            EventType.NOTE,
            state=OperationState.QUEUED,
            only_from=(OperationState.RUNNING, OperationState.QUEUED),
            note=f"{message}; retrying in {delay}s ({retries_left} retries left)",
        )
        run.log.warning("transient failure, will retry", error=message, retries_left=retries_left)
        return
    attempts = attempt_of(job)
    if job is not None:
        job.retries_left = 0  # RQ retries whatever raises; this failure must not be retried
    error_class, message, hint = describe_failure(exc, run.request.op_id)
    if transient and attempts > 1:
        message += f" (gave up after {attempts} attempts)"
    run.emit(
        EventType.FAILED,
        state=OperationState.FAILED,
        only_from=_ACTIVE,
        error_class=error_class,
        message=message,
        hint=hint,
        suggestion=exc.suggestion if isinstance(exc, KosmosError) else None,
        fields=_ended_fields(run, error=run.redactor(message)),
    )
    run.state.record_outcome(run.request.kind.value, run.request.component, ok=False)
    if isinstance(exc, KosmosError):
        run.log.error("operation failed", error_class=error_class, error=run.redactor(message))
    else:
        run.log.error("operation failed: internal error", exc_info=exc)


def describe_failure(exc: BaseException, op_id: str) -> tuple[str, str, str]:
    """Error class, one-line message and hint for a failed event (no tracebacks, no secrets)."""
    if isinstance(exc, KosmosError):
        lines = exc.message.strip().splitlines() or [type(exc).__name__]
        return type(exc).__name__, lines[0], _short(exc.hint)
    if isinstance(exc, JobTimeoutException):
        return (
            "Timeout",
            f"operation {op_id} ran past its time limit and was stopped",
            "the abandoned-work sweep removes its partial upload",
        )
    return "InternalError", f"internal error, operation {op_id}", "the worker log has the details"


def _short(hint: str, limit: int = 500) -> str:
    hint = hint.strip()
    return hint if len(hint) <= limit else "…" + hint[-limit:]


def _ended_fields(run: JobRun, **extra: Any) -> dict[str, str]:
    fields = {"ended_at": run.ctx.clock().isoformat()}
    for name, value in extra.items():
        fields[name] = value if isinstance(value, str) else json.dumps(value, default=str)
    return fields
