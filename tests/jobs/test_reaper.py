"""The reaper and RQ: a dead worker's job ends failed, whoever noticed the death first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from workers import queues
from workers.context import Context
from workers.core.config import Settings
from workers.jobs.maintenance import reap_abandoned
from workers.state.redis_state import RedisState


@pytest.mark.parametrize("retry", ["queued", "scheduled"])
def test_a_reaped_operation_leaves_its_rq_job_failed_with_no_retry_pending(
    make_settings: Callable[..., Settings], redis_url: str, retry: str
) -> None:
    """RQ's own cleanup of a dead worker's started jobs can come first: a job with retries
    left goes back to its queue (no interval) or to the scheduled registry (an interval).
    The reaper's failure must take that retry back; the runner would only skip it."""
    settings = make_settings(**{"redis.url": redis_url})
    ctx = Context(settings)
    request = queues.new_request("backup", "postgres")
    queues.submit(ctx.redis, settings, request)
    job = Job.fetch(request.op_id, connection=ctx.redis)
    queue = Queue(job.origin, connection=ctx.redis)
    if retry == "scheduled":  # as StartedJobRegistry.cleanup does with retry intervals
        queue.remove(job)
        with ctx.redis.pipeline() as pipe:
            job.retry(queue, pipe)
            pipe.execute()
        assert job.get_status() == JobStatus.SCHEDULED
    state = RedisState(ctx.redis, settings.redis.key_prefix)
    state.update_operation(request.op_id, state="running", worker="doomed")
    state.beat(request.op_id, state.server_time() - timedelta(minutes=5))

    reaped = reap_abandoned(ctx, state)

    assert [r["request"]["op_id"] for r in reaped] == [request.op_id]
    assert job.get_status() == JobStatus.FAILED
    assert request.op_id in FailedJobRegistry(job.origin, connection=ctx.redis)
    assert request.op_id not in ScheduledJobRegistry(job.origin, connection=ctx.redis)
    assert request.op_id not in queue.job_ids  # no retry left to run
    assert state.operation(request.op_id)["state"] == "failed"  # type: ignore[index]
