"""Fixtures of the MinIO engine's tests: a moto source with a request recorder, and a world."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import s3_client
from tests.engines.minio.world import Clock, World
from tests.services import MotoServer
from workers.core.config import Settings


@pytest.fixture(scope="session")
def source_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """A second moto server, the MinIO being backed up; it can record the requests it gets."""
    log_dir = tmp_path_factory.mktemp("moto-source")
    saved = os.environ.get("MOTO_RECORDER_FILEPATH")
    os.environ["MOTO_RECORDER_FILEPATH"] = str(log_dir / "recording.jsonl")
    try:
        server = MotoServer(log_dir=log_dir).start()
    finally:
        if saved is None:
            del os.environ["MOTO_RECORDER_FILEPATH"]
        else:
            os.environ["MOTO_RECORDER_FILEPATH"] = saved
    yield server
    server.stop()


def source_env(url: str, buckets: tuple[str, ...], **extra: str) -> dict[str, str]:
    """Overrides that point the minio component at ``url``."""
    prefix = "KOSMOS__COMPONENTS__MINIO__"
    env = {
        prefix + "ENDPOINT_URL": url,
        prefix + "REGION": "us-east-1",
        prefix + "ACCESS_KEY_ID": "test",
        prefix + "SECRET_ACCESS_KEY": "test",
        prefix + "BUCKETS": "[" + ", ".join(buckets) + "]",
        prefix + "WORKERS": "4",
    }
    return env | {prefix + key.upper(): value for key, value in extra.items()}


@pytest.fixture
def make_world(
    source_server: MotoServer,
    s3_server: MotoServer,
    bucket: str,
    s3_env: dict[str, str],
    make_settings: Callable[..., Settings],
) -> Callable[..., World]:
    """Build a world: two fresh source buckets, the backup bucket, settings with overrides."""

    def build(*, lock_bucket: bool = False, **extra: str) -> World:
        source = s3_client(source_server.url)
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
        settings = make_settings(env=env | source_env(source_server.url, names, **extra))
        return World(
            settings=settings,
            source=source,
            backup=s3_client(s3_server.url),
            backup_bucket=backup_bucket,
            source_url=source_server.url,
            buckets=names,
            clock=Clock(),
        )

    return build


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    """The default world."""
    return make_world()
