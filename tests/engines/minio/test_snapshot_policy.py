"""The pure policy of snapshots: what a run copies, what a restore writes, what GC frees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workers.core.errors import UsageError
from workers.core.manifest import BackupSummary
from workers.engines.minio.snapshot import (
    Entry,
    Listed,
    as_of,
    collectable,
    dump_entries,
    load_entries,
    plan_restore,
    plan_run,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SHA_A = "a" * 64
SHA_B = "b" * 64


def entry(key: str, size: int = 3, etag: str = "e1", sha: str = SHA_A) -> Entry:
    """An entry of bucket ``docs``."""
    return Entry(bucket="docs", key=key, size=size, etag=etag, modified=T0, sha256=sha)


def listed(key: str, size: int = 3, etag: str = "e1") -> Listed:
    """A listing line of bucket ``docs``."""
    return Listed(bucket="docs", key=key, size=size, etag=etag, modified=T0)


def test_only_new_or_changed_objects_are_copied() -> None:
    previous = {e.where: e for e in [entry("same"), entry("resized"), entry("retagged")]}
    plan = plan_run(
        [listed("same"), listed("resized", size=4), listed("retagged", etag="e2"), listed("new")],
        previous,
    )
    assert [e.key for e in plan.kept] == ["same"]
    assert [i.key for i in plan.to_copy] == ["resized", "retagged", "new"]


def test_the_keys_listing_round_trips_sorted() -> None:
    entries = [entry("b"), entry("a", sha=SHA_B)]
    assert load_entries(dump_entries(entries)) == sorted(entries, key=lambda e: e.where)


def test_a_restore_counts_creates_overwrites_unchanged_and_deletes_only_when_pruning() -> None:
    entries = [entry("same"), entry("changed"), entry("missing", size=10)]
    target = {"same": (3, "e1"), "changed": (3, "other"), "extra": (1, "x")}
    plan = plan_restore(entries, target, prune=False)
    assert plan.counts.as_dict() == {
        "create": 1,
        "overwrite": 1,
        "unchanged": 1,
        "delete": 0,
        "bytes": 13,
    }
    assert plan.deletes == []
    assert plan_restore(entries, target, prune=True).deletes == ["extra"]


def summary(hours: int) -> BackupSummary:
    """A snapshot that finished ``hours`` after T0."""
    at = T0 + timedelta(hours=hours)
    return BackupSummary(
        id=f"minio-2026030{1 + hours // 24}T{hours % 24:02}00Z-ab12",
        component="minio",
        kind="minio-snapshot",
        started_at=at,
        finished_at=at,
        size=1,
        objects=1,
    )


def test_as_of_takes_the_newest_snapshot_at_or_before_the_point() -> None:
    backups = [summary(0), summary(24), summary(48)]
    assert as_of(backups, T0 + timedelta(hours=47)).id == backups[1].id
    assert as_of(backups, T0 + timedelta(hours=48)).id == backups[2].id
    with pytest.raises(UsageError, match="the first was taken 2026-03-01 00:00"):
        as_of(backups, T0 - timedelta(seconds=1))


def test_gc_frees_only_old_unreferenced_blobs_and_nothing_while_a_run_is_young() -> None:
    now = T0 + timedelta(days=10)
    stored = {SHA_A: T0, SHA_B: now - timedelta(minutes=5), "c" * 64: T0}
    grace = timedelta(days=1)
    assert collectable(stored, {"c" * 64}, now=now, grace=grace, running=[]) == [SHA_A]
    young_run = [now - timedelta(hours=2)]
    assert collectable(stored, set(), now=now, grace=grace, running=young_run) == []
    killed_run = [now - timedelta(days=2)]
    assert collectable(stored, set(), now=now, grace=grace, running=killed_run) == [
        SHA_A,
        "c" * 64,
    ]
