"""MinIO's contract-test fixture: a moto source with one bucket, snapshotted into moto S3.

Also the session's source server (``minio_source_server``), which the MinIO tests share; it
can record the requests it gets (moto's recorder), so a test can count the GETs of a run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import s3_client
from tests.engines.case import ContractCase
from tests.services import MotoServer
from tests.storage.backups import Clock
from workers.context import Context
from workers.core.config import Settings
from workers.engines.minio.options import MinioRestoreOptions

OBJECTS = {"a.txt": b"alpha", "dir/b.bin": os.urandom(3000), "empty": b""}


@pytest.fixture(scope="session")
def minio_source_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
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
def minio_contract_case(
    minio_source_server: MotoServer,
    s3_env: dict[str, str],
    make_settings: Callable[..., Settings],
) -> ContractCase:
    """One source bucket with three objects; restores go to a new bucket on the same MinIO."""
    source = s3_client(minio_source_server.url)
    bucket, target = f"contract-{uuid.uuid4().hex[:8]}", f"restored-{uuid.uuid4().hex[:8]}"
    source.create_bucket(Bucket=bucket)
    for key, body in OBJECTS.items():
        source.put_object(Bucket=bucket, Key=key, Body=body)
    env = s3_env | source_env(minio_source_server.url, (bucket,), keep_last="1")
    clock = Clock()

    def check_restored(result: Any) -> None:
        assert result.total["create"] == len(OBJECTS)
        for key, body in OBJECTS.items():
            assert source.get_object(Bucket=target, Key=key)["Body"].read() == body

    return ContractCase(
        ctx=Context(make_settings(env=env), clock=clock),
        clock=clock,
        component="minio",
        restore_options=MinioRestoreOptions(target=target),
        check_restored=check_restored,
    )
