"""Service fixtures: moto's S3 server, the machine's Redis and PostgreSQL, settings."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis as redis_lib
from botocore.config import Config

from tests.services import MotoServer
from workers.config_loader import parse_settings
from workers.core.config import Settings
from workers.engines import ENGINES

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = ROOT / "examples" / "kosmos-backup.yaml"
# pytest-xdist runs the suite in several processes (`-n N`, as .ci/run does): each takes its
# own Redis database and database-name prefix, so no process empties or lists another's.
XDIST_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
# Each parallel developer run may pick its own first database; CI uses the default.
REDIS_DB = int(os.environ.get("KOSMOS_TEST_REDIS_DB", "15")) - XDIST_WORKER
if REDIS_DB < 0:
    raise pytest.UsageError(f"KOSMOS_TEST_REDIS_DB leaves no Redis database for {XDIST_WORKER=}")


def db_prefix(base: str) -> str:
    """A prefix for the machine PostgreSQL's test database names, this xdist process's own."""
    return f"{base}{XDIST_WORKER}_" if XDIST_WORKER else base


PG_DSN = os.environ.get("KOSMOS_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres")

# Fixtures that live beside their helpers, registered here so no test module imports them;
# and each registered kind's contract fixture (tests/engines/<kind>/contract.py): a kind
# registered without one fails collection, so it cannot skip the contract test.
pytest_plugins = [
    "tests.jobs.harness",
    "tests.pgsample",
    "tests.scenarios.restore_world",
    *(f"tests.engines.{kind}.contract" for kind in sorted(ENGINES)),
]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's standalone S3 server, one per test session."""
    server = MotoServer(log_dir=tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


def s3_client(endpoint: str) -> Any:
    """A plain boto3 client for test setup and inspection."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(request_checksum_calculation="when_required"),
    )


@pytest.fixture
def bucket(s3_server: MotoServer) -> str:
    """A fresh, empty bucket on the session's S3 server."""
    name = f"kb-{uuid.uuid4().hex[:12]}"
    s3_client(s3_server.url).create_bucket(Bucket=name)
    return name


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The machine's Redis, on a test database that is emptied before and after each test."""
    url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    client = redis_lib.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build Settings from the example config with ``KOSMOS__…`` style overrides.

    ``make_settings(storage_url="file:///x", **{"components.postgres.dsn": "..."})``.
    """

    def build(
        storage_url: str | None = None, env: dict[str, str] | None = None, **dotted: str
    ) -> Settings:
        environ = {"KOSMOS__STORAGE__URL": storage_url or f"file://{tmp_path}/store"}
        for key, value in dotted.items():
            environ["KOSMOS__" + key.replace(".", "__").upper()] = value
        environ.update(env or {})
        return parse_settings(EXAMPLE_CONFIG.read_text(), environ, origin=str(EXAMPLE_CONFIG))

    return build


@pytest.fixture
def s3_env(s3_server: MotoServer, bucket: str) -> dict[str, str]:
    """Overrides that point storage at the moto server's fresh bucket."""
    return {
        "KOSMOS__STORAGE__URL": f"s3://{bucket}/kosmos",
        "KOSMOS__STORAGE__ENDPOINT_URL": s3_server.url,
        "KOSMOS__STORAGE__REGION": "us-east-1",
        "KOSMOS__STORAGE__ACCESS_KEY_ID": "test",
        "KOSMOS__STORAGE__SECRET_ACCESS_KEY": "test",
        "KOSMOS__STORAGE__MAX_ATTEMPTS": "2",
        "KOSMOS__STORAGE__PART_SIZE_MIB": "5",
    }
