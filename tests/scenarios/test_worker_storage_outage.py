"""The backup store goes away mid-job: transient faults are retried, within a budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rq.job import Job

from tests.conftest import s3_client
from tests.jobs import harness
from tests.jobs.throttle import ThrottledProxy
from tests.services import MotoServer, free_port
from workers import queues
from workers.context import Context
from workers.core.events import EventType

pytestmark = pytest.mark.timeout(240)
BUCKET = "kb-outage"


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[MotoServer]:
    """A moto server of our own, on a fixed port, that the test may stop and restart."""
    server = MotoServer(log_dir=tmp_path).start()
    s3_client(server.url).create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def test_store_restarted_mid_upload_the_retry_succeeds(
    tmp_path: Path,
    own_s3: MotoServer,
    redis_url: str,
    big_db: str,
) -> None:
    proxy = ThrottledProxy(own_s3.port, rate=3 << 20).start()
    config = harness.write_config(
        tmp_path / "kosmos.yaml",
        storage=harness.s3_storage(proxy.url, BUCKET),
        redis_url=redis_url,
        database=big_db,
        jobs={"retry_intervals": ["8s", "8s"]},
    )
    settings = harness.settings_of(config)
    ctx = Context(settings)
    s3 = s3_client(own_s3.url)
    work = harness.worker(config, tmp_path)
    with harness.running(work):
        op_id = queues.submit(ctx.redis, settings, queues.new_request("backup", "postgres"))
        [upload] = harness.wait_until(
            lambda: s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads"), 30, "an upload"
        )
        harness.wait_until(
            lambda: s3.list_parts(
                Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"]
            ).get("Parts"),
            30,
            "a first part to land",
        )
        assert harness.ended(settings, op_id)() is None
        own_s3.stop()  # mid-upload: a part is in, the rest still flows through the proxy

        def retry_note() -> str | None:
            notes = [e.note for e in harness.events_of(settings, op_id) if e.type == "note"]
            return next((n for n in notes if n and "retrying in 8s" in n), None)

        note = harness.wait_until(retry_note, 60, "the retry note")
        assert "storage" in note and "(2 retries left)" in note
        own_s3.start()  # the same port; moto forgot everything, so the bucket comes back
        s3_client(own_s3.url).create_bucket(Bucket=BUCKET)

        record = harness.wait_until(harness.ended(settings, op_id), 120, "the retried backup")
        assert record["state"] == "finished", work.output()[-4000:]
    proxy.stop()
    events = harness.events_of(settings, op_id)
    started = [e for e in events if e.type == EventType.STARTED]
    assert len(started) == 2 and started[1].note == "attempt 2"
    assert events[-1].type == EventType.FINISHED
    assert record["attempt"] == 2
    index = ctx.repo.index("postgres")
    assert [b.id for b in index.backups] == [record["summary"]["backup_id"]]


def test_store_that_stays_down_fails_after_the_retry_budget(
    tmp_path: Path,
    redis_url: str,
    small_db: str,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    config = harness.write_config(
        tmp_path / "kosmos.yaml",
        storage=harness.s3_storage(dead, BUCKET),
        redis_url=redis_url,
        database=small_db,
        jobs={"retry_intervals": ["1s", "1s"]},
    )
    settings = harness.settings_of(config)
    ctx = Context(settings)
    work = harness.worker(config, tmp_path)
    with harness.running(work):
        op_id = queues.submit(ctx.redis, settings, queues.new_request("backup", "postgres"))
        record = harness.wait_until(harness.ended(settings, op_id), 90, "the backup to fail")
    assert record["state"] == "failed"
    events = harness.events_of(settings, op_id)
    assert [e.type for e in events].count(EventType.STARTED) == 3
    notes = [e.note or "" for e in events if e.type == EventType.NOTE]
    assert any("(2 retries left)" in n for n in notes) and any(
        "(1 retries left)" in n for n in notes
    )
    failed = events[-1]
    assert failed.type == EventType.FAILED and failed.error_class == "StorageUnavailable"
    assert "storage unreachable" in (failed.message or "")
    assert (failed.message or "").endswith("(gave up after 3 attempts)")
    assert "endpoint_url" in (failed.hint or "")
    job = Job.fetch(op_id, connection=ctx.redis)
    assert job.get_status() == "failed"
