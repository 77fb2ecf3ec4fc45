"""Open the configured Store and Repository."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from workers.core.config import Settings
from workers.core.ports import Store
from workers.storage.repository import Clock, IndexLock, PipelineOptions, Repository, utc_now
from workers.storage.store_local import LocalStore

INDEX_LOCK_TTL = 60
"""Seconds a crashed holder can keep a component's index lock."""
INDEX_LOCK_WAIT = 10.0
"""Seconds to wait for the lock before updating without it (verify-after-write still runs)."""


def open_store(settings: Settings) -> Store:
    """The S3 or local store named by ``storage.url``."""
    if settings.storage.scheme == "file":
        return LocalStore(settings.storage.path)
    from workers.storage.store_s3 import S3Store

    return S3Store(settings.storage)


def open_repository(settings: Settings, clock: Clock = utc_now) -> Repository:
    """A Repository over the configured store with the configured pipeline.

    On S3, index updates are serialized with a Redis lock shared by every worker and the WAL
    archiver; a local directory store locks itself.
    """
    store = open_store(settings)
    lock = None if isinstance(store, LocalStore) else redis_index_lock(settings)
    return Repository(store, PipelineOptions.from_settings(settings), clock, index_lock=lock)


def redis_index_lock(settings: Settings) -> IndexLock:
    """An index lock on the configured Redis; without Redis, updates go ahead unlocked.

    Best effort on purpose: the WAL archiver records freshness through the index, and an
    archive_command must not fail (and stall PostgreSQL) because Redis is down.
    """
    from workers.state.embedded_redis import resolve_url

    url = resolve_url(settings)
    name = f"{settings.redis.key_prefix}:index-lock:"

    @contextlib.contextmanager
    def held(component: str) -> Iterator[None]:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=5)
        lock = client.lock(
            name + component, timeout=INDEX_LOCK_TTL, blocking_timeout=INDEX_LOCK_WAIT
        )
        try:
            acquired = bool(lock.acquire())
        except redis.RedisError:
            acquired = False
        try:
            yield
        finally:
            if acquired:
                with contextlib.suppress(redis.RedisError):
                    lock.release()
            client.close()

    return held
