"""What the worker's guard refuses before it touches anything, as people would meet it: a job
enqueued by hand that names someone's pending request, and a target that is the live source
under another spelling (decided by the servers' identity, not by how the DSN is written).
"""

from __future__ import annotations

from typing import Any

import redis as redis_lib
from rq import Queue

from tests.pgsample import database_exists
from tests.scenarios.restore_world import (
    HELD_QUEUE,
    World,
    click,
    request_from,
    restore_ops,
    run_worker,
    slash,
    stop,
    world,
)
from workers.context import utc_now
from workers.core.approvals import RequestState
from workers.core.audit import AuditAction
from workers.core.events import ChatContext, EventType
from workers.core.ids import new_operation_id
from workers.core.operations import OperationKind, OperationRequest
from workers.core.restore_plan import job_params
from workers.restore_requests import audit_of, store_of

__all__ = ["world"]  # the module fixture, used by every scenario here


def test_a_job_by_hand_naming_a_pending_request_leaves_the_request_alone(
    world: World, redis_url: str
) -> None:
    target = world.fresh("pending")
    request_id = request_from(slash(world, f"held latest --target {target} -- pending", "UALICE"))
    before = store_of(world.ctx()).get(request_id)
    assert before.state == RequestState.PENDING
    op_id = new_operation_id(utc_now())
    forged = OperationRequest(
        op_id=op_id,
        kind=OperationKind.RESTORE,
        component="held",
        params={**job_params(before.plan), "approval_id": "ap-0000", "request_id": request_id},
        chat=ChatContext(source="cli"),
        requested_at=utc_now(),
        requested_by="UMALLORY",
    )
    queue = Queue(HELD_QUEUE, connection=redis_lib.Redis.from_url(redis_url))
    queue.enqueue("workers.jobs.restore.run", forged.model_dump(mode="json"), job_id=op_id)
    _drain(world)

    assert store_of(world.ctx()).get(request_id) == before
    assert not database_exists(target)
    [failed] = [e for _, e in _events(world) if e.op_id == op_id and e.type == EventType.FAILED]
    assert "pending, not approved" in (failed.message or "")
    refusals = [r for r in audit_of(world.ctx()).tail(50) if r.action == AuditAction.REFUSE]
    assert [r.details["requested_by"] for r in refusals] == ["UMALLORY"]

    # The real approval still runs the restore.
    click(world, request_id, "UBOB", "approve")
    _drain(world)
    assert store_of(world.ctx()).get(request_id).state == RequestState.EXECUTED
    assert database_exists(target)
    assert [o["state"] for o in restore_ops(world)] == ["finished"]


def _drain(world: World) -> None:
    worker = run_worker(world, HELD_QUEUE, burst=True)
    try:
        worker.wait(60)
    finally:
        stop(worker)


def _events(world: World) -> list[Any]:
    from workers import queues

    ctx = world.ctx()
    return queues.read_events(ctx.redis, ctx.settings, "0-0", count=10_000)
