"""What must hold when things go wrong: damage named, kills survived, GC never races a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.engines.minio.world import COMPONENT, World
from tests.sync import Checked, wait_until
from workers.core.manifest import VerificationState
from workers.engines.minio import mirror, retention, verification
from workers.engines.minio.restoration import restore

ROOT = Path(__file__).resolve().parents[3]


def test_verify_names_the_keys_whose_blobs_are_damaged(world: World) -> None:
    world.put("good", b"fine content")
    world.put("bad-1", b"will be damaged")
    world.put("bad-2", b"will be damaged", bucket=1)
    ctx = world.context()
    manifest = mirror.snapshot(ctx, COMPONENT)
    shallow = verification.verify(ctx, COMPONENT, manifest)
    damaged = next(k for k in world.blob_keys() if k.endswith(_sha(b"will be damaged")))
    world.backup.put_object(Bucket=world.backup_bucket, Key=damaged, Body=b"will be DAMAGED")

    still_shallow = verification.verify(ctx, COMPONENT, manifest)
    deep = verification.verify(ctx, COMPONENT, manifest, deep=True)

    assert shallow.verification is not None
    assert shallow.verification.state == VerificationState.PASSED
    assert still_shallow.verification is not None  # same size: only a re-hash can see it
    assert still_shallow.verification.state == VerificationState.PASSED
    assert deep.verification is not None and deep.verification.state == VerificationState.FAILED
    assert set(deep.verification.checks["damaged"]) == {
        f"{world.buckets[0]}/bad-1",
        f"{world.buckets[1]}/bad-2",
    }
    assert f"{world.buckets[0]}/bad-1" in deep.verification.detail
    world.backup.delete_object(Bucket=world.backup_bucket, Key=damaged)
    gone = verification.verify(ctx, COMPONENT, manifest)
    assert gone.verification is not None and gone.verification.checks["damaged"] == {
        f"{world.buckets[0]}/bad-1": "missing",
        f"{world.buckets[1]}/bad-2": "missing",
    }

    world.clock.tick(hours=1)
    repaired = mirror.snapshot(ctx, COMPONENT)  # the damaged keys are copied afresh
    assert repaired.details["changed_objects"] == 2
    again = verification.verify(ctx, COMPONENT, repaired, full=True)
    assert again.verification is not None
    assert again.verification.state == VerificationState.PASSED


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_a_kill_mid_run_leaves_the_previous_snapshot_and_the_next_run_completes(
    make_world: Callable[..., World],
) -> None:
    world = make_world(workers="1")
    world.put("before", b"the first snapshot's only object")
    ctx = world.context()
    first = mirror.snapshot(ctx, COMPONENT)
    for number in range(400):
        world.put(f"bulk/{number:04}", os.urandom(2048), bucket=number % 2)
    env = {**os.environ, **_overrides(world), "KOSMOS_TEST_COMPONENT": COMPONENT}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.engines.minio.snapshot_process"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
    )
    try:
        wait_until(lambda: len(world.blob_keys()) > 20, 60, "the run to copy some objects")
    finally:
        child.kill()
        output, _ = child.communicate(timeout=30)
    assert b"committed" not in output  # killed mid-run, not after

    assert [b.id for b in ctx.repo.index(COMPONENT).backups] == [first.id]
    checked = verification.verify(ctx, COMPONENT, first, deep=True)
    assert checked.verification is not None
    assert checked.verification.state == VerificationState.PASSED
    world.clock.tick(hours=1)
    second = mirror.snapshot(ctx, COMPONENT)
    assert second.details["objects"] == 401
    verified = verification.verify(ctx, COMPONENT, second, full=True)
    assert verified.verification is not None
    assert verified.verification.state == VerificationState.PASSED


def _overrides(world: World) -> dict[str, str]:
    """The world's settings as KOSMOS__ overrides for a child process."""
    storage = world.settings.storage
    assert storage.access_key_id is not None and storage.secret_access_key is not None
    component = world.settings.components[COMPONENT]
    assert component.kind == "minio"
    source = "KOSMOS__COMPONENTS__MINIO__"
    return {
        "KOSMOS__STORAGE__URL": storage.url,
        "KOSMOS__STORAGE__ENDPOINT_URL": storage.endpoint_url or "",
        "KOSMOS__STORAGE__REGION": storage.region or "",
        "KOSMOS__STORAGE__ACCESS_KEY_ID": storage.access_key_id.get_secret_value(),
        "KOSMOS__STORAGE__SECRET_ACCESS_KEY": storage.secret_access_key.get_secret_value(),
        "KOSMOS__REDIS__KEY_PREFIX": world.settings.redis.key_prefix,
        source + "ENDPOINT_URL": component.endpoint_url,
        source + "REGION": "us-east-1",
        source + "ACCESS_KEY_ID": "test",
        source + "SECRET_ACCESS_KEY": "test",
        source + "BUCKETS": json.dumps(list(component.buckets)),
        source + "WORKERS": str(component.workers),
    }


def test_gc_never_removes_a_blob_that_a_snapshot_in_progress_references(
    make_world: Callable[..., World],
) -> None:
    world = make_world(workers="1")
    world.put("old", b"only in the first snapshot")
    ctx = world.context()
    first = mirror.snapshot(ctx, COMPONENT)
    world.source.delete_object(Bucket=world.buckets[0], Key="old")
    for number in range(200):
        world.put(f"new/{number:03}", os.urandom(1024))
    world.clock.tick(hours=1)
    run = Checked(mirror.snapshot, world.context(), COMPONENT)
    run.start()
    try:
        wait_until(lambda: len(world.blob_keys()) > 10, 60, "the run to write some blobs")
        collected = retention.collect(world.context(), COMPONENT)
    finally:
        run.check(120)
    second = ctx.repo.index(COMPONENT).backups[-1]
    assert second.id != first.id and collected.blobs == 0
    checked = verification.verify(ctx, COMPONENT, ctx.repo.manifest(second.id))
    assert checked.verification is not None
    assert checked.verification.state == VerificationState.PASSED
    assert len(world.blob_keys()) == 201


def test_retention_drops_old_snapshots_keeps_the_newest_three_then_collects(
    world: World,
) -> None:
    ctx = world.context()
    for day in range(5):
        world.put("daily", f"content of day {day}".encode())
        mirror.snapshot(ctx, COMPONENT)
        world.clock.tick(days=40)
    assert len(world.blob_keys()) == 5

    dry = retention.prune(ctx, COMPONENT, dry_run=True)
    assert len(dry) == 2 and len(world.blob_keys()) == 5
    deleted = retention.prune(ctx, COMPONENT)

    kept = ctx.repo.index(COMPONENT).backups
    assert {d.backup_id for d in deleted} == {d.backup_id for d in dry}
    assert len(kept) == 3 and len(world.blob_keys()) == 3
    oldest_kept = kept[0]
    restore(ctx, COMPONENT, oldest_kept.id)
    assert world.get("daily", world.buckets[0]) == b"content of day 2"


def test_object_lock_blobs_are_locked_and_never_written_twice(
    make_world: Callable[..., World],
) -> None:
    world = make_world(lock_bucket=True, object_lock="governance")
    ctx = world.context()
    world.put("a", b"same content")
    mirror.snapshot(ctx, COMPONENT)
    world.source.delete_object(Bucket=world.buckets[0], Key="a")
    world.clock.tick(hours=1)
    mirror.snapshot(ctx, COMPONENT)  # "same content" is now referenced by no newest snapshot
    world.put("b", b"same content", bucket=1)
    world.put("c", b"other content")
    world.clock.tick(hours=1)
    third = mirror.snapshot(ctx, COMPONENT)

    versions = world.backup.list_object_versions(
        Bucket=world.backup_bucket, Prefix=f"kosmos/{COMPONENT}/blobs/"
    )["Versions"]
    keys = [v["Key"] for v in versions]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 2
    head = world.backup.head_object(Bucket=world.backup_bucket, Key=keys[0])
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"] > world.clock.now
    assert third.details["objects"] == 2
