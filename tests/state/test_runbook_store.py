"""Run state in Redis, written through to S3 (moto) after every change, restored from it."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis as redis_lib

from tests.conftest import s3_client
from tests.services import MotoServer
from workers.core.config import StorageSettings
from workers.core.errors import ConflictError, NotFoundError, StorageError
from workers.core.events import ChatContext
from workers.core.runbook import Runbook
from workers.core.runbook_run import RunState, StepStatus, new_run
from workers.state.runbook_store import RunStore, state_key
from workers.storage.store_s3 import S3Store

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def s3_store(server: MotoServer, bucket: str) -> S3Store:
    return S3Store(
        StorageSettings(
            url=f"s3://{bucket}/kosmos",
            endpoint_url=server.url,
            region="us-east-1",
            access_key_id="test",
            secret_access_key="test",
            max_attempts=1,
            connect_timeout=timedelta(seconds=2),
        )
    )


def a_run(run_id: str = "dr-20261124T030000Z-ab12", channel: str = "COPS") -> RunState:
    runbook = Runbook.model_validate(
        {
            "name": "t",
            "title": "T",
            "steps": [
                {"id": "a", "title": "A", "kind": "job", "operation": "catalog.pick"},
                {"id": "b", "title": "B", "kind": "manual", "depends_on": ["a"]},
            ],
        }
    )
    return new_run(
        runbook,
        run_id=run_id,
        params={},
        started_by="U1",
        now=T0,
        rto=timedelta(hours=4),
        rpo=timedelta(hours=1),
        modes={},
        safe={},
        chat=ChatContext(source="slack", channel=channel),
    )


@pytest.fixture
def store(redis_url: str, s3_server: MotoServer, bucket: str) -> RunStore:
    return RunStore(redis_lib.Redis.from_url(redis_url), s3_store(s3_server, bucket), "kt")


def stored_state(s3_server: MotoServer, bucket: str, run_id: str) -> dict[str, Any]:
    body = s3_client(s3_server.url).get_object(Bucket=bucket, Key=f"kosmos/{state_key(run_id)}")
    return json.loads(body["Body"].read())  # type: ignore[no-any-return]


def test_every_change_is_written_through_to_storage(
    store: RunStore, s3_server: MotoServer, bucket: str
) -> None:
    run = store.create(a_run())
    assert stored_state(s3_server, bucket, run.run_id)["version"] == 0
    store.update(run.run_id, lambda r: r.start("a", T0, "op-1"))
    store.update(run.run_id, lambda r: r.succeed("a", T0, outputs={"backup_id": "x"}))
    stored = stored_state(s3_server, bucket, run.run_id)
    assert stored["version"] == 2
    assert stored["steps"]["a"]["status"] == "done"
    assert stored["steps"]["a"]["outputs"] == {"backup_id": "x"}
    assert store.active("COPS") == run.run_id
    with pytest.raises(ConflictError):
        store.create(a_run())


def test_a_flushed_redis_is_restored_from_storage(store: RunStore) -> None:
    run = store.create(a_run())
    store.update(run.run_id, lambda r: r.start("a", T0, "op-1"))
    store.client.flushdb()
    with pytest.raises(NotFoundError, match="not in Redis") as missing:
        store.load(run.run_id)
    assert "kosmos-backup dr resume" in missing.value.hint
    restored = store.restore(run.run_id)
    assert restored.steps["a"].status == StepStatus.RUNNING
    assert restored.version == 1
    assert store.load(run.run_id) == restored
    assert store.active("COPS") == run.run_id
    # A newer Redis copy wins over an older stored one.
    store.client.set(
        store.key("run", run.run_id), restored.model_copy(update={"version": 9}).model_dump_json()
    )
    assert store.restore(run.run_id).version == 9


def test_a_durable_change_lands_on_storage_when_redis_lost_the_run(
    store: RunStore, s3_server: MotoServer, bucket: str
) -> None:
    run = store.create(a_run())
    store.update(run.run_id, lambda r: r.start("a", T0, "op-1"))
    store.client.flushdb()  # Redis lost while step a's job ran
    after, _ = store.update(
        run.run_id, lambda r: r.succeed("a", T0, outputs={"n": 1}), durable=True
    )
    assert after.version == 2
    stored = stored_state(s3_server, bucket, run.run_id)
    assert stored["version"] == 2 and stored["steps"]["a"]["status"] == "done"
    # The run is back in Redis, findable as before the loss.
    assert store.load(run.run_id).steps["a"].status == StepStatus.DONE
    assert store.active("COPS") == run.run_id
    assert [r.run_id for r in store.recent()] == [run.run_id]
    # A plain change still needs the run in Redis: only durable ones look at the storage.
    store.client.flushdb()
    with pytest.raises(NotFoundError, match="not in Redis"):
        store.update(run.run_id, lambda r: None)


def test_a_durable_change_prefers_storage_over_an_older_redis(
    store: RunStore, s3_server: MotoServer, bucket: str
) -> None:
    run = store.create(a_run())
    old = store.update(run.run_id, lambda r: r.start("a", T0, "op-1"))[0].model_dump_json()
    store.update(run.run_id, lambda r: r.succeed("a", T0, outputs={"n": 1}))
    store.update(run.run_id, lambda r: r.start("b", T0))
    store.client.set(store.key("run", run.run_id), old)  # Redis came back from a snapshot
    assert store.newest(run.run_id).version == 3  # what a resume starts from
    assert store.load(run.run_id).steps["a"].status == StepStatus.DONE
    store.client.set(store.key("run", run.run_id), old)
    after, _ = store.update(run.run_id, lambda r: r.steps["b"].status, durable=True)
    assert after.version == 4 and after.steps["a"].status == StepStatus.DONE
    assert stored_state(s3_server, bucket, run.run_id)["steps"]["b"]["status"] == "running"


def test_a_strict_change_fails_when_storage_cannot_take_it(redis_url: str, tmp_path: Any) -> None:
    server = MotoServer(log_dir=tmp_path).start()
    s3_client(server.url).create_bucket(Bucket="strict")
    store = RunStore(redis_lib.Redis.from_url(redis_url), s3_store(server, "strict"), "kt")
    run = store.create(a_run())
    server.stop()
    with pytest.raises(StorageError):
        store.update(run.run_id, lambda r: r.start("a", T0, "op-1"), durable=True, strict=True)
    # Durable but not strict: Redis serves when the storage cannot be read or written.
    after, _ = store.update(run.run_id, lambda r: r.start("a", T0, "op-2"), durable=True)
    assert after.steps["a"].op_id == "op-2"


def test_a_failed_change_writes_nothing(store: RunStore) -> None:
    run = store.create(a_run())

    def broken(state: RunState) -> None:
        state.start("a", T0, "op-1")
        raise ConflictError("changed my mind")

    with pytest.raises(ConflictError):
        store.update(run.run_id, broken)
    assert store.load(run.run_id).steps["a"].status == StepStatus.PENDING


def test_concurrent_changes_are_serialized_by_the_lock(store: RunStore) -> None:
    run = store.create(a_run())

    def bump(_: RunState) -> None:
        return None

    threads = [
        threading.Thread(target=lambda: [store.update(run.run_id, bump) for _ in range(10)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.load(run.run_id).version == 40


def test_the_run_goes_on_when_storage_is_down(redis_url: str, tmp_path: Any) -> None:
    server = MotoServer(log_dir=tmp_path).start()
    s3_client(server.url).create_bucket(Bucket="down")
    store = RunStore(redis_lib.Redis.from_url(redis_url), s3_store(server, "down"), "kt")
    run = store.create(a_run())
    server.stop()
    after, _ = store.update(run.run_id, lambda r: r.start("a", T0, "op-1"))
    assert store.load(run.run_id).steps["a"].status == StepStatus.RUNNING
    assert after.version == 1


def test_last_drill_survives_redis_loss(store: RunStore) -> None:
    assert store.last_drill() is None
    store.client.delete(store.key("last-drill"))
    store.save_last_drill({"run_id": "dr-x", "result": "done", "rto_seconds": 12.5})
    store.client.flushdb()
    assert store.last_drill() == {"result": "done", "rto_seconds": 12.5, "run_id": "dr-x"}


def test_report_files_live_beside_the_state(store: RunStore) -> None:
    key = store.put_artifact("dr-20261124T030000Z-ab12", "report.md", b"# report")
    assert key == "_dr/dr-20261124T030000Z-ab12/report.md"
    assert store.artifact("dr-20261124T030000Z-ab12", "report.md") == b"# report"
