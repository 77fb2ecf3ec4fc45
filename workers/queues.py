"""The job contract the front doors use: queues, dotted job paths, submit, and reading back.

Front doors import only this module (redis and rq, no engine clients): they build an
OperationRequest, :func:`submit` it, and follow the operation through :func:`operation`
and the events stream (:func:`read_events`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq import Queue, Retry

from workers.core.config import (
    QUEUE_DEFAULT,
    QUEUE_ETCD,
    QUEUE_POSTGRES,
    Settings,
)
from workers.core.errors import ConflictError, UsageError
from workers.core.events import ChatContext, Event, EventType
from workers.core.ids import new_operation_id
from workers.core.operations import (
    DrStepParams,
    OperationKind,
    OperationParams,
    OperationRequest,
)
from workers.engines import ENGINES, engine_for, has_engine
from workers.state.redis_state import RedisState

__all__ = [
    "JOB_PATHS",
    "QUEUE_DEFAULT",
    "QUEUE_ETCD",
    "QUEUE_POSTGRES",
    "all_queues",
    "last_event_id",
    "new_request",
    "operation",
    "operation_events",
    "queue_for",
    "read_events",
    "recent_operations",
    "submit",
]

JOB_PATHS: dict[OperationKind, str] = {
    OperationKind.BACKUP: "workers.jobs.backup.run",
    OperationKind.VERIFY: "workers.jobs.verify.run",
    OperationKind.RESTORE: "workers.jobs.restore.run",
    OperationKind.PRUNE: "workers.jobs.maintenance.prune",
    OperationKind.SWEEP: "workers.jobs.maintenance.sweep",
    OperationKind.RPO_CHECK: "workers.jobs.maintenance.rpo_check",
    OperationKind.DR_STEP: "workers.jobs.dr.run_step",
}
"""Where each kind's RQ entry point lives; enqueued by path so callers never import it."""

TIMEOUTS: dict[OperationKind, timedelta] = {
    OperationKind.BACKUP: timedelta(hours=4),
    OperationKind.VERIFY: timedelta(hours=4),
    OperationKind.RESTORE: timedelta(hours=12),
    OperationKind.PRUNE: timedelta(hours=1),
    OperationKind.SWEEP: timedelta(hours=1),
    OperationKind.RPO_CHECK: timedelta(minutes=5),
    OperationKind.DR_STEP: timedelta(hours=12),
}
"""RQ kills a job past its timeout without cleanup, so each is sized to its kind."""
BASE_BACKUP_TIMEOUT = timedelta(hours=12)
RESULT_TTL = timedelta(days=1)
FAILURE_TTL = timedelta(days=30)
_NEEDS_COMPONENT = {OperationKind.BACKUP, OperationKind.VERIFY, OperationKind.RESTORE}
# The monitor runs again in a minute; a restore's approval is single-use, so a retry would be
# refused anyway, and a half-done restore is for a person to look at before anything reruns.
_NOT_RETRIED = {OperationKind.RPO_CHECK, OperationKind.RESTORE}


def new_request(
    kind: OperationKind | str,
    component: str | None = None,
    *,
    params: OperationParams | None = None,
    chat: ChatContext | None = None,
    requested_by: str | None = None,
    now: datetime | None = None,
) -> OperationRequest:
    """A request with a fresh operation id (``params``: its kind's model; absent, defaults)."""
    moment = now or datetime.now(UTC)
    return OperationRequest.model_validate(
        {
            "op_id": new_operation_id(moment),
            "kind": OperationKind(kind),
            "component": component,
            "params": params,
            "chat": chat or ChatContext(),
            "requested_at": moment,
            "requested_by": requested_by,
        }
    )


def queue_for(settings: Settings, request: OperationRequest) -> str:
    """The queue that routes this request to a worker that can do it."""
    if isinstance(request.params, DrStepParams) and request.params.queue:
        return request.params.queue
    if request.component is None or request.kind not in _NEEDS_COMPONENT:
        return QUEUE_DEFAULT
    component = settings.component(request.component)
    if not has_engine(component.kind):
        return component.queue
    return engine_for(component.kind).queue_for(component, request)


def all_queues(settings: Settings) -> list[str]:
    """Every queue this configuration routes work to (for workers and metrics)."""
    names = {QUEUE_DEFAULT}
    for component in settings.components.values():
        names.add(component.queue)
        if has_engine(component.kind):
            names.update(engine_for(component.kind).queues(component))
    return sorted(names)


def validate(settings: Settings, request: OperationRequest) -> None:
    """Refuse a request no worker could carry out (UsageError naming what is valid)."""
    if request.kind not in JOB_PATHS:
        known = ", ".join(kind.value for kind in JOB_PATHS)
        raise UsageError(f"{request.kind.value} jobs are not available yet", hint=f"use: {known}")
    if request.component is None:
        if request.kind in _NEEDS_COMPONENT:
            raise UsageError(f"{request.kind.value} needs a component")
        return
    if request.component not in settings.components:
        valid = ", ".join(settings.components)
        raise UsageError(
            f"unknown component {request.component!r}", hint=f"valid components: {valid}"
        )
    component = settings.component(request.component)
    if request.base and not (
        has_engine(component.kind) and engine_for(component.kind).base_backups
    ):
        with_base = " and ".join(kind for kind, found in ENGINES.items() if found.base_backups)
        raise UsageError(
            f"{request.component} is {component.kind}: only {with_base} has base backups"
        )


def submit(client: redis.Redis, settings: Settings, request: OperationRequest) -> str:
    """Validate, record as queued, emit ``accepted`` and enqueue; return the operation id.

    Submitting the same request twice (a retried chat command) enqueues it once.
    """
    validate(settings, request)
    state = RedisState(client, settings.redis.key_prefix)
    queue = queue_for(settings, request)
    quiet = request.quiet
    now = datetime.now(UTC)
    if not quiet and not state.record_operation(request, queue, now):
        existing = state.operation(request.op_id) or {}
        if existing.get("request") != request.model_dump(mode="json"):
            raise ConflictError(f"operation id {request.op_id} is taken by another request")
        return request.op_id
    if not quiet:
        state.append_event(
            Event(
                op_id=request.op_id,
                type=EventType.ACCEPTED,
                at=now,
                operation=request.kind.value,
                component=request.component,
                chat=request.chat,
                note=f"queued on {queue}",
            )
        )
    retry = _retry(settings, request.kind)
    Queue(settings.rq_queue(queue), connection=client).enqueue(
        JOB_PATHS[request.kind],
        request.model_dump(mode="json"),
        job_id=request.op_id,
        job_timeout=_seconds(_timeout(request)),
        retry=retry,
        meta={"retry_max": retry.max if retry else 0},
        result_ttl=_seconds(RESULT_TTL),
        failure_ttl=_seconds(FAILURE_TTL),
        description=f"{request.kind.value} {request.component or ''} {request.op_id}".strip(),
    )
    return request.op_id


def operation(client: redis.Redis, settings: Settings, op_id: str) -> dict[str, Any] | None:
    """An operation's record (request, state, last event, timestamps, summary), or None."""
    return RedisState(client, settings.redis.key_prefix).operation(op_id)


def recent_operations(client: redis.Redis, settings: Settings, limit: int = 20) -> list[dict]:
    """The newest operations first."""
    return RedisState(client, settings.redis.key_prefix).recent_operations(limit)


def operation_events(client: redis.Redis, settings: Settings, op_id: str) -> list[Event]:
    """An operation's events so far (all but progress), oldest first."""
    state = RedisState(client, settings.redis.key_prefix)
    return [event for _id, event in state.operation_events(op_id)]


def last_event_id(client: redis.Redis, settings: Settings) -> str:
    """The stream id to read after to see only events from now on."""
    return RedisState(client, settings.redis.key_prefix).last_event_id()


def read_events(
    client: redis.Redis,
    settings: Settings,
    after: str = "0-0",
    count: int = 100,
    block_ms: int | None = None,
) -> list[tuple[str, Event]]:
    """Events after stream id ``after``, oldest first, as (stream id, Event)."""
    return RedisState(client, settings.redis.key_prefix).read_events(after, count, block_ms)


def _timeout(request: OperationRequest) -> timedelta:
    if request.kind == OperationKind.BACKUP and request.base:
        return BASE_BACKUP_TIMEOUT
    return TIMEOUTS[request.kind]


def _retry(settings: Settings, kind: OperationKind) -> Retry | None:
    intervals = [_seconds(delta) for delta in settings.jobs.retry_intervals]
    if not intervals or kind in _NOT_RETRIED:
        return None
    return Retry(max=len(intervals), interval=intervals)


def _seconds(delta: timedelta) -> int:
    return max(1, int(delta.total_seconds()))
