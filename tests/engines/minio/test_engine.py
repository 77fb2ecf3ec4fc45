"""The MinIO engine as the registry calls it: its options, its checks, its probe, its facts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tests.engines.minio.world import COMPONENT, World
from tests.services import free_port
from workers.context import Context
from workers.core.config import Settings
from workers.core.errors import UsageError
from workers.core.ports import no_progress
from workers.engines import engine_for
from workers.engines.minio.options import MinioRestoreOptions

ENGINE = engine_for("minio")


def test_restore_in_place_writes_the_same_buckets(world: World) -> None:
    world.put("doc", b"v1")
    ctx = world.context()
    ENGINE.backup(ctx, COMPONENT, progress=no_progress)
    world.put("doc", b"v2 changed")

    options = MinioRestoreOptions(target="live")
    result = ENGINE.restore(ctx, COMPONENT, "latest", options, progress=no_progress)

    assert world.get("doc", world.buckets[0]) == b"v1"
    assert result.total["overwrite"] == 1
    with pytest.raises(UsageError, match="no base backups"):
        ENGINE.backup(ctx, COMPONENT, base=True, progress=no_progress)


def test_restore_options_refuse_what_a_minio_restore_does_not_take() -> None:
    with pytest.raises(ValueError, match="database"):
        MinioRestoreOptions.model_validate({"database": "app"})


def test_a_file_store_is_a_config_problem(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    problems = ENGINE.config_problems(settings, COMPONENT)
    assert problems and "needs an s3:// store" in problems[0][0]


def test_the_probe_names_a_dead_endpoint_without_credentials(world: World) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    source = world.settings.components[COMPONENT].model_copy(update={"endpoint_url": dead})
    settings = world.settings.model_copy(
        update={"components": {**world.settings.components, COMPONENT: source}}
    )
    problem = ENGINE.unreachable(Context(settings), COMPONENT)
    assert problem is not None and dead in problem and "test" not in problem
    assert ENGINE.unreachable(world.context(), COMPONENT) is None


def test_status_shows_objects_bytes_and_what_changed(world: World) -> None:
    world.put("a", b"x" * 2048)
    world.put("b", b"y" * 10)
    ctx = world.context()
    ENGINE.backup(ctx, COMPONENT, progress=no_progress)
    world.put("b", b"z" * 11)
    world.clock.tick(hours=1)
    ENGINE.backup(ctx, COMPONENT, progress=no_progress)

    from workers import components

    (status,) = components.status(ctx, COMPONENT, probe=False)
    facts = ENGINE.status_facts(status, datetime.now(UTC))

    assert [fact.short for fact in facts] == ["2 objects, 2 KiB, 1 changed"]
    assert status.last_backup is not None and not status.rpo_breached


def test_a_drill_restores_into_scratch_buckets_and_reads_every_object_back(world: World) -> None:
    world.put("a", b"first")
    world.put("b", b"second", bucket=1)
    ctx = world.context()
    manifest = ENGINE.backup(ctx, COMPONENT, progress=no_progress)

    options = MinioRestoreOptions(scratch=True)
    result = ENGINE.restore(ctx, COMPONENT, "latest", options, progress=no_progress)

    suffix = manifest.id.split("-", 1)[1].lower()
    scratch = {f"{world.buckets[0]}-drill-{suffix}", f"{world.buckets[1]}-drill-{suffix}"}
    assert set(result.buckets) == scratch
    assert result.compared == 2 and result.mismatched == [] and result.checksums_matched
    assert world.get("b", f"{world.buckets[1]}-drill-{suffix}") == b"second"
