"""An approved restore replayed under a new operation id, queued ahead of the real job."""

from __future__ import annotations

import redis as redis_lib
from rq import Queue

from tests.pgsample import database_exists
from tests.scenarios.restore_world import (
    HELD_QUEUE,
    World,
    audit_actions,
    click,
    request_from,
    restore_ops,
    run_worker,
    slash,
)
from workers.context import utc_now
from workers.core.approvals import RequestState
from workers.core.events import EventType
from workers.core.ids import new_operation_id
from workers.queues import read_events
from workers.restore.requests import store_of


def test_a_replay_ahead_of_the_real_job_is_refused_and_the_real_job_runs(
    world: World, redis_url: str
) -> None:
    target = world.fresh("ahead")
    request_id = request_from(slash(world, f"held latest --target {target} -- replay", "UALICE"))
    click(world, request_id, "UBOB", "approve")
    queue = Queue(
        world.ctx().settings.rq_queue(HELD_QUEUE), connection=redis_lib.Redis.from_url(redis_url)
    )
    [job] = queue.jobs
    replay = dict(job.args[0], op_id=new_operation_id(utc_now()))
    queue.enqueue("workers.jobs.restore.run", replay, job_id=replay["op_id"], at_front=True)
    assert queue.job_ids == [replay["op_id"], job.id]

    worker = run_worker(world, HELD_QUEUE, burst=True)
    assert worker.wait(60) == 0
    ctx = world.ctx()
    failed = [
        e
        for _, e in read_events(ctx.redis, ctx.settings, "0-0", count=10_000)
        if e.op_id == replay["op_id"] and e.type == EventType.FAILED
    ]
    assert [e.message for e in failed] == [
        f"the approval of {request_id} was given to another operation"
    ]
    assert [(o["op_id"], o["state"]) for o in restore_ops(world)] == [(job.id, "finished")]
    assert database_exists(target)
    spent = store_of(ctx).get(request_id)
    assert spent.state == RequestState.EXECUTED and spent.op_id == job.id
    assert audit_actions(world).count("restore.execute") == 1
    assert audit_actions(world).count("restore.refuse") == 1
