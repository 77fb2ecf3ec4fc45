"""The prune job in a worker: retention applied, the newest three good backups always kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.jobs import harness
from workers import queues
from workers.context import Context
from workers.core.operations import PruneParams

pytestmark = pytest.mark.timeout(180)


def test_prune_keeps_the_newest_three_even_past_retention(
    tmp_path: Path,
    small_stack: harness.Stack,
) -> None:
    config, settings = small_stack(
        postgres={"retention": "1d"},
    )
    ctx = Context(settings)
    now = datetime.now(UTC)
    seeded = [
        harness.seed_backup(settings, "postgres", now - timedelta(days=d)) for d in (10, 9, 8, 7, 6)
    ]
    work = harness.worker(config, tmp_path)
    with harness.running(work):
        dry = queues.submit(
            ctx.redis,
            settings,
            queues.new_request("prune", "postgres", params=PruneParams(dry_run=True)),
        )
        planned = harness.wait_until(harness.ended(settings, dry), 60, "the dry run")
        assert planned["state"] == "finished"
        assert [d["backup_id"] for d in planned["summary"]["deleted"]] == seeded[:2]
        assert len(ctx.repo.index("postgres").backups) == 5

        real = queues.submit(ctx.redis, settings, queues.new_request("prune", "postgres"))
        done = harness.wait_until(harness.ended(settings, real), 60, "the prune")
    assert done["state"] == "finished"
    summary = done["summary"]
    assert [d["backup_id"] for d in summary["deleted"]] == seeded[:2]
    assert summary["count"] == 2 and summary["bytes"] > 0 and not summary["dry_run"]
    assert [b.id for b in ctx.repo.index("postgres").backups] == seeded[2:]
    finished = harness.events_of(settings, real)[-1]
    assert finished.summary["deleted"][0]["reason"].startswith("older than the 1d retention")
