"""Open the configured Store and Repository."""

from __future__ import annotations

from workers.adapters.repository import Clock, PipelineOptions, Repository, utc_now
from workers.adapters.store_local import LocalStore
from workers.core.config import Settings
from workers.core.ports import Store


def open_store(settings: Settings) -> Store:
    """The S3 or local store named by ``storage.url``."""
    if settings.storage.scheme == "file":
        return LocalStore(settings.storage.path)
    from workers.adapters.store_s3 import S3Store

    return S3Store(settings.storage)


def open_repository(settings: Settings, clock: Clock = utc_now) -> Repository:
    """A Repository over the configured store with the configured pipeline."""
    return Repository(open_store(settings), PipelineOptions.from_settings(settings), clock)
