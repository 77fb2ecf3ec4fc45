"""The MinIO engine as the registry calls it: its options, its checks, its probe."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.engines.minio.world import COMPONENT, World
from tests.services import free_port
from workers.context import Context
from workers.core.config import Settings
from workers.core.errors import UsageError
from workers.engines.minio import engine


def test_restore_in_place_writes_the_same_buckets_and_refuses_foreign_options(
    world: World,
) -> None:
    world.put("doc", b"v1")
    ctx = world.context()
    engine.backup(ctx, COMPONENT)
    world.put("doc", b"v2 changed")

    with pytest.raises(UsageError, match="takes no database"):
        engine.restore(ctx, COMPONENT, "latest", database="app")
    result = engine.restore(ctx, COMPONENT, "latest", target="live")

    assert world.get("doc", world.buckets[0]) == b"v1"
    assert result.total["overwrite"] == 1
    with pytest.raises(UsageError, match="no base backups"):
        engine.backup(ctx, COMPONENT, base=True)


def test_a_file_store_is_a_config_problem(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    problems = engine.config_problems(settings, COMPONENT)
    assert problems and "needs an s3:// store" in problems[0][0]


def test_the_probe_names_a_dead_endpoint_without_credentials(world: World) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    source = world.settings.components[COMPONENT].model_copy(update={"endpoint_url": dead})
    settings = world.settings.model_copy(
        update={"components": {**world.settings.components, COMPONENT: source}}
    )
    problem = engine.unreachable(Context(settings), COMPONENT)
    assert problem is not None and dead in problem and "test" not in problem
    assert engine.unreachable(world.context(), COMPONENT) is None


def test_a_drill_restores_into_scratch_buckets_and_reads_every_object_back(world: World) -> None:
    world.put("a", b"first")
    world.put("b", b"second", bucket=1)
    ctx = world.context()
    manifest = engine.backup(ctx, COMPONENT)

    result = engine.restore(ctx, COMPONENT, "latest", scratch="true")

    suffix = manifest.id.split("-", 1)[1].lower()
    scratch = {f"{world.buckets[0]}-drill-{suffix}", f"{world.buckets[1]}-drill-{suffix}"}
    assert set(result.buckets) == scratch
    assert result.compared == 2 and result.mismatched == [] and result.checksums_matched
    assert world.get("b", f"{world.buckets[1]}-drill-{suffix}") == b"second"
