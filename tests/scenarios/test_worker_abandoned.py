"""A worker SIGKILLed mid-upload: the operation fails soon, its upload is swept, work goes on."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from rq.job import Job

from tests.conftest import s3_client
from tests.jobs import harness
from tests.jobs.throttle import ThrottledProxy
from tests.services import MotoServer
from workers import queues
from workers.context import Context
from workers.core.events import EventType

pytestmark = pytest.mark.timeout(240)
REAP_MARGIN = timedelta(seconds=5)


def test_killed_worker_fails_its_operation_and_the_next_run_succeeds(
    tmp_path: Path,
    s3_server: MotoServer,
    bucket: str,
    redis_url: str,
    big_db: str,
) -> None:
    proxy = ThrottledProxy(s3_server.port, rate=3 << 20).start()
    config = harness.write_config(
        tmp_path / "kosmos.yaml",
        storage=harness.s3_storage(proxy.url, bucket),
        redis_url=redis_url,
        database=big_db,
    )
    settings = harness.settings_of(config)
    ctx = Context(settings)
    state = harness.state_of(settings)
    s3 = s3_client(s3_server.url)

    def pending_uploads() -> list[dict[str, str]]:
        return list(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))

    doomed = harness.worker(config, tmp_path, name="doomed")
    survivor = harness.worker(config, tmp_path, name="survivor", start=False)
    planner = harness.scheduler(config, tmp_path, start=False)
    with harness.running(doomed, planner, survivor):
        op_id = queues.submit(ctx.redis, settings, queues.new_request("backup", "postgres"))
        [upload] = harness.wait_until(pending_uploads, 30, "the upload to begin")

        def parts_uploaded() -> int:
            listed = s3.list_parts(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            return len(listed.get("Parts", []))

        # Mid-upload: a part has landed and the upload is still open.
        harness.wait_until(parts_uploaded, 30, "a first part to be uploaded")
        record = state.operation(op_id)
        assert record is not None and record["state"] == "running"
        assert [u["UploadId"] for u in pending_uploads()] == [upload["UploadId"]]
        doomed.kill(record["pid"])  # the worker, RQ's scheduler child and the work horse
        killed_at = time.monotonic()

        planner.start()
        failed = harness.wait_until(harness.ended(settings, op_id), 120, "the op to be failed")
        took = time.monotonic() - killed_at
        assert failed["state"] == "failed"
        # The last beat came before the kill, so the reaper must act within one heartbeat,
        # abandoned_after and one tick of it; the margin covers polling on 2 loaded cores.
        jobs = settings.jobs
        bound = jobs.heartbeat + jobs.abandoned_after + jobs.scheduler_tick + REAP_MARGIN
        assert took < bound.total_seconds(), f"reaped {took:.1f}s after the kill (> {bound})"
        event = harness.events_of(settings, op_id)[-1]
        assert event.type == EventType.FAILED and event.error_class == "WorkerLost"
        assert re.fullmatch(
            r"worker doomed died while running backup of postgres \(no heartbeat for \d+s\)",
            event.message or "",
        )
        assert Job.fetch(op_id, connection=ctx.redis).get_status() == "failed"
        assert ctx.repo.index("postgres").backups == []

        survivor.start()
        sweep = next(
            r for r in state.recent_operations(20) if r["kind"] == "sweep" and r["component"]
        )
        swept = harness.wait_until(harness.ended(settings, sweep["op_id"]), 60, "the sweep")
        assert swept["state"] == "finished"
        assert upload["Key"].endswith(swept["summary"]["aborted_uploads"][0])
        assert upload["UploadId"] not in {u["UploadId"] for u in pending_uploads()}

        def next_backup() -> dict[str, str] | None:
            for item in state.recent_operations(20):
                if item["kind"] == "backup" and item["op_id"] != op_id:
                    return harness.ended(settings, item["op_id"])()
            return None

        after = harness.wait_until(next_backup, 90, "the next scheduled backup to end")
        assert after["state"] == "finished", survivor.output()[-3000:]
        assert after["request"]["chat"]["source"] == "scheduler"
        assert [b.id for b in ctx.repo.index("postgres").backups] == [after["summary"]["backup_id"]]
        assert state.holder("postgres") is None
    proxy.stop()
    log = [entry["action"] for entry in state.scheduler_log()]
    assert any(action.startswith(f"reaped {op_id} (doomed)") for action in log)
    print(f"abandoned op failed {took:.1f}s after SIGKILL")
