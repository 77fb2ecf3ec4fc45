"""A backup through the queue, as an operator lives it: worker processes, events, catalog."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import click
import pytest
from rq.job import Job

from bot.cli.jobs import submit_and_render
from tests.jobs import harness
from tests.jobs.throttle import ThrottledProxy
from tests.services import MotoServer, free_port, wait_for_port
from workers import queues
from workers.context import Context
from workers.core.events import EventType
from workers.scheduler import Scheduler

pytestmark = pytest.mark.timeout(180)


def test_enqueued_backup_updates_catalog_and_events_arrive_in_order(
    tmp_path: Path,
    small_stack: harness.Stack,
) -> None:
    config, settings = small_stack()
    port = free_port()
    worker = harness.worker(
        config, tmp_path, "--metrics-port", str(port), "--metrics-addr", "127.0.0.1"
    )
    with harness.running(worker):
        ctx = Context(settings)
        request = queues.new_request("backup", "postgres", requested_by="U1")
        op_id = queues.submit(ctx.redis, settings, request)
        record = harness.wait_until(harness.ended(settings, op_id), 60, "the backup to end")
        assert record["state"] == "finished", worker.output()[-3000:]

        events = harness.events_of(settings, op_id)
        kinds = [e.type for e in events]
        assert kinds[0] == EventType.ACCEPTED and kinds[1] == EventType.STARTED
        assert kinds[-1] == EventType.FINISHED
        assert EventType.PROGRESS in kinds
        assert set(kinds[2:-1]) <= {EventType.PROGRESS, EventType.NOTE}
        assert [e.at for e in events] == sorted(e.at for e in events)
        summary = events[-1].summary
        assert summary["objects"] == 2 and summary["size"] > 0

        index = ctx.repo.index("postgres")
        assert [b.id for b in index.backups] == [summary["backup_id"]]
        assert record["summary"]["backup_id"] == summary["backup_id"]
        assert record["worker"] == worker.args[2]
        job = Job.fetch(op_id, connection=ctx.redis)
        assert job.get_status() == "finished"

        wait_for_port(port)
        scrape = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        finished = index.backups[0].finished_at.timestamp()
        stamp = re.search(
            r'kosmos_backup_last_success_timestamp_seconds\{component="postgres"\} (\S+)', scrape
        )
        assert stamp is not None and float(stamp.group(1)) == pytest.approx(finished)
        assert 'kosmos_backup_rpo_breached{component="postgres"} 0.0' in scrape
        assert 'kosmos_backup_failures_total{component="postgres"} 0.0' in scrape
        assert 'kosmos_backup_jobs_total{kind="backup",outcome="finished"} 1.0' in scrape
        assert 'kosmos_backup_queue_depth{queue="kosmos-default"} 0.0' in scrape

        listed = harness.run_cli(config, "ops", "--json")
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["operations"][0]["op_id"] == op_id
        shown = harness.run_cli(config, "ops", op_id)
        assert shown.returncode == 0 and "finished" in shown.stdout and "accepted" in shown.stdout


def test_waiting_submit_renders_progress_and_exits_1_on_failure(
    tmp_path: Path,
    small_stack: harness.Stack,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = "kb_c_missing_db"
    config, settings = small_stack(
        extra={
            "broken": {
                "kind": "postgres",
                "dsn": f"{harness.PG_DSN} dbname=postgres",
                "databases": [missing],
                "continuous": False,
                "frequency": "1h",
                "retention": "30d",
            }
        },
    )
    worker = harness.worker(config, tmp_path)
    with harness.running(worker):
        ctx = Context(settings)
        op_id = submit_and_render(ctx, queues.new_request("backup", "postgres"), wait=True)
        out = capsys.readouterr()
        assert out.out.strip() == op_id
        assert "✓ backup finished: postgres-" in out.err

        with pytest.raises(click.exceptions.Exit) as exited:
            submit_and_render(ctx, queues.new_request("backup", "broken"), wait=True)
        assert exited.value.exit_code == 1
        err = capsys.readouterr().err
        assert "✗ backup failed:" in err and missing in err

    # Bad input is never retried: one attempt, and RQ holds it as failed with no retries left.
    failed_op = queues.recent_operations(ctx.redis, settings, 1)[0]
    events = harness.events_of(settings, failed_op["op_id"])
    assert [e.type for e in events].count(EventType.STARTED) == 1
    assert events[-1].error_class == "EngineError"
    job = Job.fetch(failed_op["op_id"], connection=ctx.redis)
    assert job.get_status() == "failed" and job.retries_left == 0
    assert harness.state_of(settings).consecutive_failures() == {"broken": 1, "postgres": 0}


def test_lock_prevents_a_concurrent_backup_of_one_component(
    tmp_path: Path,
    s3_server: MotoServer,
    bucket: str,
    redis_url: str,
    big_db: str,
) -> None:
    proxy = ThrottledProxy(s3_server.port, rate=4 << 20).start()
    config = harness.write_config(
        tmp_path / "kosmos.yaml",
        storage=harness.s3_storage(proxy.url, bucket),
        redis_url=redis_url,
        database=big_db,
    )
    settings = harness.settings_of(config)
    first_worker = harness.worker(config, tmp_path)
    second_worker = harness.worker(config, tmp_path)
    with harness.running(first_worker, second_worker):
        ctx = Context(settings)
        state = harness.state_of(settings)
        first = queues.submit(ctx.redis, settings, queues.new_request("backup", "postgres"))
        harness.wait_until(lambda: state.holder("postgres") == first, 30, "the first to lock")
        second = queues.submit(ctx.redis, settings, queues.new_request("backup", "postgres"))
        refused = harness.wait_until(harness.ended(settings, second), 30, "the second to end")
        assert refused["state"] == "failed"
        failed = harness.events_of(settings, second)[-1]
        assert failed.error_class == "ConflictError"
        assert failed.message == f"postgres is busy: backup {first} is running"
        # The scheduler also leaves a locked component alone.
        report = Scheduler(ctx).once()
        assert report is not None and report.skipped["backup:postgres"] == "locked"
        done = harness.wait_until(harness.ended(settings, first), 90, "the first to end")
        assert done["state"] == "finished"
        assert state.holder("postgres") is None
    proxy.stop()
    assert len(Context(settings).repo.index("postgres").backups) == 1
