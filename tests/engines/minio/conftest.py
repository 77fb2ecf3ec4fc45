"""Fixtures of the MinIO engine's tests: a moto source with a request recorder, and a world."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tests.conftest import s3_client
from tests.engines.minio.contract import source_env
from tests.engines.minio.world import Clock, World
from tests.services import MotoServer
from workers.core.config import Settings


@pytest.fixture
def make_world(
    minio_source_server: MotoServer,
    s3_server: MotoServer,
    bucket: str,
    s3_env: dict[str, str],
    make_settings: Callable[..., Settings],
) -> Callable[..., World]:
    """Build a world: two fresh source buckets, the backup bucket, settings with overrides."""

    def build(*, lock_bucket: bool = False, **extra: str) -> World:
        source = s3_client(minio_source_server.url)
        names = (f"docs-{uuid.uuid4().hex[:8]}", f"media-{uuid.uuid4().hex[:8]}")
        for name in names:
            source.create_bucket(Bucket=name)
        backup_bucket = bucket
        env = dict(s3_env)
        if lock_bucket:
            backup_bucket = f"kb-lock-{uuid.uuid4().hex[:8]}"
            s3_client(s3_server.url).create_bucket(
                Bucket=backup_bucket, ObjectLockEnabledForBucket=True
            )
            env["KOSMOS__STORAGE__URL"] = f"s3://{backup_bucket}/kosmos"
        settings = make_settings(env=env | source_env(minio_source_server.url, names, **extra))
        return World(
            settings=settings,
            source=source,
            backup=s3_client(s3_server.url),
            backup_bucket=backup_bucket,
            source_url=minio_source_server.url,
            buckets=names,
            clock=Clock(),
        )

    return build


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    """The default world."""
    return make_world()
