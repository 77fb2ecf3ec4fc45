"""Repository fixtures shared by the adapter tests: the same test on a local and an S3 store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.services import MotoServer
from tests.storage.backups import Clock
from tests.storage.stores import local_store, s3_store
from workers.storage.repository import PipelineOptions, Repository
from workers.storage.store_local import LocalStore
from workers.storage.store_s3 import S3Store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalStore | S3Store:
    """A local directory store, then an S3 store on the moto server."""
    if request.param == "local":
        return local_store(tmp_path / "store")
    server: MotoServer = request.getfixturevalue("s3_server")
    return s3_store(server.url, request.getfixturevalue("bucket"))


@pytest.fixture
def clock() -> Clock:
    """A clock the test moves by hand."""
    return Clock()


@pytest.fixture
def repo(store: LocalStore | S3Store, clock: Clock) -> Repository:
    """A repository over ``store`` with cheap compression."""
    return Repository(store, PipelineOptions(compression_level=1, compression_threads=0), clock)
