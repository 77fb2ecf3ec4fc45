"""Snapshots against real S3 over HTTP: point in time, incremental, one read per change."""

from __future__ import annotations

import os

import pytest

from tests.engines.minio.world import COMPONENT, Recorder, World
from workers.core.errors import UsageError
from workers.engines.minio import mirror
from workers.engines.minio.options import MinioRestoreOptions
from workers.engines.minio.restoration import restore


def test_a_deleted_object_comes_back_as_of_the_day_before(world: World) -> None:
    world.put("a.txt", b"alpha")
    world.put("b.txt", b"beta", bucket=1)
    mirror.snapshot(world.context(), COMPONENT)
    the_day_before = world.clock.tick(hours=12)
    world.clock.tick(hours=12)
    world.source.delete_object(Bucket=world.buckets[0], Key="a.txt")
    mirror.snapshot(world.context(), COMPONENT)

    result = restore(world.context(), COMPONENT, options=MinioRestoreOptions(point=the_day_before))

    assert world.get("a.txt", world.buckets[0]) == b"alpha"
    assert result.total["create"] == 1 and result.total["unchanged"] == 1


def test_an_overwritten_object_comes_back_in_its_old_content(world: World) -> None:
    world.put("report.csv", b"v1,old")
    first = mirror.snapshot(world.context(), COMPONENT)
    world.clock.tick(days=1)
    world.put("report.csv", b"v2,newer and longer")
    mirror.snapshot(world.context(), COMPONENT)

    result = restore(world.context(), COMPONENT, first.id)

    assert world.get("report.csv", world.buckets[0]) == b"v1,old"
    assert result.backup_id == first.id and result.total["overwrite"] == 1


def test_a_changed_object_is_copied_exactly_once(world: World) -> None:
    world.put("same.bin", b"s" * 100)
    world.put("moving.bin", b"1" * 100)
    mirror.snapshot(world.context(), COMPONENT)
    world.put("moving.bin", b"2" * 150)
    recorder = Recorder(world.source_url)

    world.clock.tick(hours=1)
    recorder.start()
    second = mirror.snapshot(world.context(), COMPONENT)
    gets = recorder.object_gets()
    world.clock.tick(hours=1)
    recorder.start()
    third = mirror.snapshot(world.context(), COMPONENT)
    gets_after = recorder.object_gets()

    assert gets == [f"/{world.buckets[0]}/moving.bin"]
    assert second.details["changed_objects"] == 1 and second.details["objects"] == 2
    assert gets_after == [] and third.details["changed_objects"] == 0


def test_an_unchanged_run_reads_no_object_bodies(world: World) -> None:
    for number in range(30):
        world.put(f"dir/{number:03}", os.urandom(512), bucket=number % 2)
    mirror.snapshot(world.context(), COMPONENT)
    recorder = Recorder(world.source_url)

    world.clock.tick(hours=1)
    recorder.start()
    manifest = mirror.snapshot(world.context(), COMPONENT)

    assert recorder.object_gets() == []
    assert manifest.details["objects"] == 30 and manifest.details["changed_objects"] == 0


def test_a_large_object_streams_through_multipart_and_restores_into_a_new_bucket(
    world: World,
) -> None:
    body = os.urandom(9 << 20) + b"tail"
    world.put("big/video.bin", body, bucket=1)
    world.put("small", b"x", bucket=1)
    mirror.snapshot(world.context(), COMPONENT)
    ctx = world.context()
    options = MinioRestoreOptions(bucket=world.buckets[1], target="restored-media")

    dry = restore(ctx, COMPONENT, options=options.model_copy(update={"dry_run": True}))
    assert "restored-media" not in {b["Name"] for b in world.source.list_buckets()["Buckets"]}
    done = restore(ctx, COMPONENT, options=options)

    assert dry.total == done.total and done.total["create"] == 2
    assert done.total["bytes"] == len(body) + 1
    assert world.get("big/video.bin", "restored-media") == body
    assert len(world.blob_keys()) == 2


def test_restore_never_deletes_from_the_target_unless_asked(world: World) -> None:
    world.put("kept", b"k")
    mirror.snapshot(world.context(), COMPONENT)
    world.put("added-later", b"new")
    ctx = world.context()
    options = MinioRestoreOptions(bucket=world.buckets[0])

    plain = restore(ctx, COMPONENT, options=options)
    assert "added-later" in world.keys(world.buckets[0])
    pruned = restore(ctx, COMPONENT, options=options.model_copy(update={"prune_target": True}))

    assert plain.total["delete"] == 0 and pruned.total["delete"] == 1
    assert world.keys(world.buckets[0]) == {"kept"}


def test_bad_input_is_named_and_nothing_is_written(world: World) -> None:
    world.put("a", b"a")
    ctx = world.context()
    before = world.blob_keys()
    bad = world.settings.model_copy(deep=True)
    component = bad.components[COMPONENT].model_copy(update={"buckets": ("no-such-bucket",)})
    bad = bad.model_copy(update={"components": {**bad.components, COMPONENT: component}})
    from workers.context import Context

    with pytest.raises(UsageError, match="no-such-bucket does not exist"):
        mirror.snapshot(Context(bad, clock=world.clock), COMPONENT)
    assert world.blob_keys() == before and ctx.repo.index(COMPONENT).backups == []

    mirror.snapshot(ctx, COMPONENT)
    too_early = world.clock.now.replace(year=world.clock.now.year - 1)
    with pytest.raises(UsageError, match="no snapshot was taken at or before"):
        restore(ctx, COMPONENT, options=MinioRestoreOptions(point=too_early))
    with pytest.raises(UsageError, match="holds no bucket 'nope'"):
        restore(ctx, COMPONENT, options=MinioRestoreOptions(bucket="nope", target="t"))
    buckets = {b["Name"] for b in world.source.list_buckets()["Buckets"]}
    assert "t" not in buckets
