"""The RPO monitor in a worker: one alert per breach, one recovery, failures after the second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rq.job import Job

from tests.jobs import harness
from workers import queues
from workers.context import Context
from workers.core.config import Settings
from workers.core.events import Event, EventType
from workers.core.operations import RpoCheckParams

pytestmark = pytest.mark.timeout(180)
BROKEN = {
    "kind": "postgres",
    "dsn": f"{harness.PG_DSN} dbname=postgres",
    "databases": ["kb_c_does_not_exist"],
    "continuous": False,
    "frequency": "1h",
    "retention": "30d",
}


def monitor_once(ctx: Context) -> None:
    """Run the monitor as the scheduler does (a quiet job) and wait for it."""
    op_id = queues.submit(
        ctx.redis, ctx.settings, queues.new_request("rpo-check", params=RpoCheckParams(quiet=True))
    )
    harness.wait_until(
        lambda: Job.fetch(op_id, connection=ctx.redis).get_status() == "finished",
        60,
        "the monitor run",
    )


def backup_once(ctx: Context, component: str) -> dict[str, object]:
    op_id = queues.submit(ctx.redis, ctx.settings, queues.new_request("backup", component))
    return harness.wait_until(harness.ended(ctx.settings, op_id), 60, f"backup of {component}")


def monitor_events(settings: Settings, component: str) -> list[Event]:
    state = harness.state_of(settings)
    return [
        e
        for _id, e in state.read_events("0-0", count=10_000)
        if e.type in (EventType.ALERT, EventType.RECOVERED) and e.component == component
    ]


def test_rpo_breach_alerts_once_and_recovers_once(
    tmp_path: Path,
    small_stack: harness.Stack,
) -> None:
    config, settings = small_stack()
    ctx = Context(settings)
    harness.seed_backup(settings, "postgres", datetime.now(UTC) - timedelta(hours=2))
    work = harness.worker(config, tmp_path)
    with harness.running(work):
        monitor_once(ctx)
        monitor_once(ctx)  # still breached a minute later: no second alert
        [alert] = monitor_events(settings, "postgres")
        assert alert.type == EventType.ALERT
        assert alert.chat.source == "monitor" and alert.chat.channel == "#kosmos-alerts"
        assert "last good backup is 2h" in (alert.message or "") and "RPO 1h" in alert.message
        assert alert.summary["cause"] == "rpo"

        assert backup_once(ctx, "postgres")["state"] == "finished"
        monitor_once(ctx)
        monitor_once(ctx)
    alert, recovered = monitor_events(settings, "postgres")
    assert recovered.type == EventType.RECOVERED and recovered.op_id == alert.op_id
    assert "recovered" in (recovered.message or "")


def test_repeated_failures_alert_after_the_second(
    tmp_path: Path,
    small_stack: harness.Stack,
) -> None:
    config, settings = small_stack(
        extra={"broken": BROKEN},
    )
    ctx = Context(settings)
    harness.seed_backup(settings, "broken", datetime.now(UTC) - timedelta(minutes=5))
    work = harness.worker(config, tmp_path)
    with harness.running(work):
        assert backup_once(ctx, "broken")["state"] == "failed"
        monitor_once(ctx)
        assert monitor_events(settings, "broken") == []  # one failure, within the RPO: calm
        assert backup_once(ctx, "broken")["state"] == "failed"
        monitor_once(ctx)
        monitor_once(ctx)
    [alert] = monitor_events(settings, "broken")
    assert alert.summary["cause"] == "failures"
    assert alert.message == "broken: 2 backups failed in a row"
