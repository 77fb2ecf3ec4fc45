"""The scheduler as it runs in production: catch-up once, and one leader among two."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rq import Queue

from tests.jobs import harness
from workers.context import Context
from workers.scheduler import Scheduler

pytestmark = pytest.mark.timeout(180)


def test_catches_up_once_after_three_missed_slots(
    small_stack: harness.Stack,
) -> None:
    config, settings = small_stack(
        jobs={"monitor_interval": "1h", "prune_interval": "1d", "sweep_interval": "1d"},
    )
    ctx = Context(settings)
    # The last good backup started 3 h 30 m ago; hourly slots at -2h30, -1h30 and -30m missed.
    seeded = harness.seed_backup(settings, "postgres", datetime.now(UTC) - timedelta(hours=3.5))

    result = harness.run_cli(config, "scheduler", "--once")
    assert result.returncode == 0, result.stderr
    reports = [json.loads(result.stdout)]
    for _ in range(2):  # more ticks, as a running scheduler makes every few seconds
        report = Scheduler(ctx).once()
        assert report is not None
        reports.append(report.__dict__)
    backups = [r for r in harness.state_of(settings).recent_operations(50) if r["kind"] == "backup"]
    assert len(backups) == 1
    assert reports[0]["enqueued"][0] == backups[0]["op_id"]
    assert reports[1]["skipped"]["backup:postgres"] == "a run is queued or running"
    log = [e["action"] for e in harness.state_of(settings).scheduler_log()]
    assert (
        f"enqueued backup:postgres {backups[0]['op_id']}: catching up once (3 slots missed)" in log
    )

    drained = harness.run_cli(config, "worker", "--burst", "--queues", "kosmos-default")
    assert drained.returncode == 0, drained.stderr
    assert harness.ended(settings, backups[0]["op_id"])()["state"] == "finished"  # type: ignore[index]
    index = ctx.repo.index("postgres")
    assert [b.id for b in index.backups][0] == seeded and len(index.backups) == 2

    again = Scheduler(ctx).once()
    assert again is not None and again.enqueued == []
    assert again.skipped["backup:postgres"] == "not due yet"
    assert Queue(ctx.settings.rq_queue("kosmos-default"), connection=ctx.redis).count == 0


TAKEOVER_MARGIN = timedelta(seconds=3)


def test_two_schedulers_one_leader_and_failover(
    tmp_path: Path,
    small_stack: harness.Stack,
) -> None:
    config, settings = small_stack(
        jobs={"monitor_interval": "2s", "prune_interval": "1d", "sweep_interval": "1d"},
    )
    state = harness.state_of(settings)
    first = harness.scheduler(config, tmp_path, "a")
    second = harness.scheduler(config, tmp_path, "b")
    work = harness.worker(config, tmp_path)
    with harness.running(first, second, work):
        leader = harness.wait_until(
            lambda: state.holder("scheduler:leader"), 20, "a scheduler to lead"
        )

        def monitor_runs() -> int:
            log = state.scheduler_log()
            return sum(1 for e in log if e["action"].startswith("enqueued task:rpo-check"))

        # Both schedulers run while the monitor is enqueued again and again: only one acts.
        harness.wait_until(lambda: monitor_runs() >= 3, 60, "three monitor runs")
        actions = state.scheduler_log()
        assert {entry["by"] for entry in actions} == {leader}
        backups = [r for r in state.recent_operations(50) if r["kind"] == "backup"]
        assert len(backups) == 1 and backups[0]["request"]["requested_by"] == leader

        pid = int(leader.split(":")[1].split("-")[0])
        dying, standby = (first, second) if first.pid == pid else (second, first)
        dying.kill()
        killed = time.monotonic()
        successor = harness.wait_until(
            lambda: (holder := state.holder("scheduler:leader")) not in (None, leader) and holder,
            30,
            "the standby to take over",
        )
        took = time.monotonic() - killed
        assert int(successor.split(":")[1].split("-")[0]) == standby.pid
        harness.wait_until(
            lambda: any(
                e["by"] == successor and e["action"].startswith("enqueued")
                for e in state.scheduler_log()
            ),
            10,
            "the new leader to enqueue work",
        )
        later = [e for e in state.scheduler_log() if e not in actions]
        assert {e["by"] for e in later} <= {leader, successor}
        assert all(e["by"] == successor for e in later if e["at"] > actions[-1]["at"])
    # The lease outlives its last renewal by one TTL; the standby asks every third of one.
    lease = settings.jobs.leader_ttl
    assert took < (lease + lease / 3 + TAKEOVER_MARGIN).total_seconds()
    print(f"standby took over {took:.1f}s after the leader was killed")
