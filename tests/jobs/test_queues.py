"""The job contract front doors use: validation, routing, the RQ job as enqueued, read-back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis as redis_lib
from rq import Queue
from rq.job import Job

from workers import queues
from workers.core.config import Settings
from workers.core.errors import ConflictError, UsageError
from workers.core.events import ChatContext
from workers.core.operations import BackupParams, OperationKind, RpoCheckParams, VerifyParams


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_url: str) -> Settings:
    return make_settings(**{"redis.url": redis_url})


@pytest.fixture
def client(redis_url: str) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(redis_url)


def test_backup_is_recorded_accepted_and_enqueued_by_path(
    settings: Settings, client: redis_lib.Redis
) -> None:
    chat = ChatContext(source="slack", channel="C042", thread_ts="17.1", user="U7")
    request = queues.new_request("backup", "postgres", chat=chat, requested_by="U7")
    assert queues.submit(client, settings, request) == request.op_id
    job = Job.fetch(request.op_id, connection=client)
    assert job.func_name == "workers.jobs.backup.run"
    assert job.origin == settings.rq_queue("kosmos-default")
    assert job.args == (request.model_dump(mode="json"),)
    assert job.timeout == 4 * 3600
    assert job.retries_left == 3
    assert job.retry_intervals == [30, 120, 600]
    record = queues.operation(client, settings, request.op_id)
    assert record is not None
    assert record["state"] == "queued" and record["queue"] == "kosmos-default"
    assert record["request"]["chat"]["channel"] == "C042"
    events = queues.operation_events(client, settings, request.op_id)
    assert [e.type for e in events] == ["accepted"]
    assert events[0].chat == chat and events[0].note == "queued on kosmos-default"


def test_routing_by_component_queue_and_base_queue(
    settings: Settings, client: redis_lib.Redis
) -> None:
    base = queues.new_request("backup", "postgres", params=BackupParams(base=True))
    etcd = queues.new_request("backup", "etcd")
    prune = queues.new_request("prune")
    for request in (base, etcd, prune):
        queues.submit(client, settings, request)
    assert Job.fetch(base.op_id, connection=client).origin == settings.rq_queue("kosmos-postgres")
    assert Job.fetch(base.op_id, connection=client).timeout == 12 * 3600
    assert Job.fetch(etcd.op_id, connection=client).origin == settings.rq_queue("kosmos-etcd")
    assert Job.fetch(prune.op_id, connection=client).origin == settings.rq_queue("kosmos-default")
    assert Queue(settings.rq_queue("kosmos-postgres"), connection=client).count == 1
    assert queues.all_queues(settings) == ["kosmos-default", "kosmos-etcd", "kosmos-postgres"]


def test_bad_requests_are_refused_before_anything_is_recorded(
    settings: Settings, client: redis_lib.Redis
) -> None:
    with pytest.raises(UsageError, match="unknown component 'mysql'") as unknown:
        queues.submit(client, settings, queues.new_request("backup", "mysql"))
    assert "postgres" in unknown.value.hint
    with pytest.raises(UsageError, match="restore needs a component"):
        queues.submit(client, settings, queues.new_request(OperationKind.RESTORE))
    with pytest.raises(UsageError, match="needs a component"):
        queues.submit(client, settings, queues.new_request("verify"))
    with pytest.raises(UsageError, match="only postgres has base backups"):
        queues.submit(
            client, settings, queues.new_request("backup", "etcd", params=BackupParams(base=True))
        )
    assert queues.recent_operations(client, settings) == []
    assert Queue(settings.rq_queue("kosmos-default"), connection=client).count == 0


def test_resubmitting_the_same_request_enqueues_it_once(
    settings: Settings, client: redis_lib.Redis
) -> None:
    request = queues.new_request("verify", "postgres", params=VerifyParams(backup="latest"))
    queues.submit(client, settings, request)
    queues.submit(client, settings, request)  # a retried chat command
    assert Queue(settings.rq_queue("kosmos-default"), connection=client).count == 1
    other = request.model_copy(update={"component": "etcd"})
    with pytest.raises(ConflictError):
        queues.submit(client, settings, other)


def test_quiet_monitor_runs_leave_no_operation_and_are_not_retried(
    settings: Settings, client: redis_lib.Redis
) -> None:
    request = queues.new_request("rpo-check", params=RpoCheckParams(quiet=True))
    queues.submit(client, settings, request)
    assert queues.operation(client, settings, request.op_id) is None
    assert queues.read_events(client, settings) == []
    job = Job.fetch(request.op_id, connection=client)
    assert job.func_name == "workers.jobs.maintenance.rpo_check"
    assert job.retries_left is None
    assert job.timeout == 300


def test_recent_operations_newest_first(settings: Settings, client: redis_lib.Redis) -> None:
    first = queues.new_request("backup", "postgres")
    second = queues.new_request("prune", "postgres")
    queues.submit(client, settings, first)
    queues.submit(client, settings, second)
    listed = queues.recent_operations(client, settings, limit=10)
    assert [r["op_id"] for r in listed] == [second.op_id, first.op_id]
    assert listed[0]["kind"] == "prune" and listed[1]["state"] == "queued"
    assert len(queues.recent_operations(client, settings, limit=1)) == 1


def test_contract_module_imports_no_engine_clients() -> None:
    code = (
        "import sys, workers.queues\n"
        "heavy = [m for m in ('boto3', 'psycopg', 'kubernetes', 'workers.engine',"
        " 'workers.storage.store_s3') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_two_installs_on_one_redis_keep_their_keys_and_jobs_apart(
    make_settings: Callable[..., Settings], redis_url: str, client: redis_lib.Redis, tmp_path: Path
) -> None:
    """Two `up`s on one Redis: each has its own key prefix and queues, from its own store."""
    from workers.worker import run_worker

    mine, theirs = (
        make_settings(storage_url=f"file://{tmp_path}/{name}", **{"redis.url": redis_url})
        for name in ("mine", "theirs")
    )
    assert mine.redis.key_prefix.startswith("kosmos-")
    assert mine.redis.key_prefix != theirs.redis.key_prefix
    assert mine.rq_queue("kosmos-default") != theirs.rq_queue("kosmos-default")
    request = queues.new_request("prune", params=None)
    queues.submit(client, mine, request)
    assert queues.recent_operations(client, theirs) == []
    run_worker(theirs, ["kosmos-default"], burst=True)  # drains only its own queue
    assert Queue(mine.rq_queue("kosmos-default"), connection=client).count == 1
    assert queues.operation(client, mine, request.op_id)["state"] == "queued"
    same = make_settings(storage_url=f"file://{tmp_path}/mine", **{"redis.url": redis_url})
    assert same.redis.key_prefix == mine.redis.key_prefix  # every process of one install agrees
    named = make_settings(**{"redis.url": redis_url, "redis.key_prefix": "shared"})
    assert named.rq_queue("kosmos-default") == "shared:kosmos-default"
