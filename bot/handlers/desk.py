"""The desk every handler works at: who is asking, and the context, roles and deadlines."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.handlers.catalog_cache import CatalogCache
from bot.roles import Authorizer
from workers.context import Context
from workers.core.catalog import ComponentStatus, find_backup, require_backup
from workers.core.errors import StorageUnavailable
from workers.core.events import ChatContext
from workers.core.manifest import BackupSummary, CatalogIndex

READ_TIMEOUT = 20.0
"""Catalog reads in a handler give up after this: the store is down, not slow. Slack's 3 s
are kept by its door, which answers a slower command through response_url
(``bot.slack.answer``)."""
REQUEST_TTL = 900
"""Seconds a request key (Slack's trigger id) is remembered, so a retry is not a second job."""
T = TypeVar("T")


@dataclass(frozen=True)
class Caller:
    """Who typed the command and where; ``request_key`` identifies retries of one request."""

    user: str
    chat: ChatContext
    request_key: str | None = None


@dataclass
class Desk:
    """What handlers need: the context, the authorizer, cached catalog reads with a deadline."""

    ctx: Context
    authorizer: Authorizer
    read_timeout: float = READ_TIMEOUT
    reads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=8, thread_name_prefix="kb-read")
    )
    catalog: CatalogCache = field(init=False)

    def __post_init__(self) -> None:
        # Imported here, in the thread that builds the desk, before any reader thread: two
        # threads importing psycopg at once (a status probe and a relay) saw it half-initialised
        # ("cannot import name 'conninfo_attempts' from partially initialized module"). Not at
        # module level: the CLI loads this module and must not pay for a database driver.
        import psycopg  # noqa: F401

        self.catalog = CatalogCache(self.ctx, self.reads)

    def read(self, func: Callable[..., T], *args: Any) -> T:
        """Run a catalog read in a thread; past the deadline, answer that the store is slow."""
        future = self.reads.submit(func, *args)
        try:
            return future.result(timeout=self.read_timeout)
        except FutureTimeout:
            raise StorageUnavailable(
                f"the backup store did not answer within {self.read_timeout:.0f}s",
                hint="try again in a minute; `kosmos-backup status` works from a shell too",
            ) from None

    def statuses(self, component: str | None) -> list[ComponentStatus]:
        """Component statuses from the cached catalog; a first read runs under the deadline."""
        if self.catalog.warm(component):
            return self.catalog.status(component)  # memory only: no thread, no deadline
        return self.read(self.catalog.status, component)

    def backups(self, component: str) -> list[BackupSummary]:
        """A component's backups, newest first, from the cached catalog."""
        if self.catalog.warm(component):
            return self.catalog.backups(component)
        return self.read(self.catalog.backups, component)

    def require_backup(self, component: str, ref: str) -> BackupSummary:
        """The backup ``ref`` names, or a UsageError pointing at ``/backup list`` (nothing queued).

        A backup made moments ago may be missing from the cached index: a miss reads again.
        """
        index = self._index(component)
        if find_backup(index, ref) is None:
            self.catalog.forget(component)
            index = self._index(component)
        return require_backup(index, ref, listing=f"/backup list {component}")

    def _index(self, component: str) -> CatalogIndex:
        if self.catalog.warm(component):
            return self.catalog.index(component)
        return self.read(self.catalog.index, component)

    def claim(self, request_key: str, op_id: str) -> str | None:
        """Remember ``op_id`` for a request; return the earlier op id if this is a retry."""
        key = f"{self.ctx.settings.redis.key_prefix}:bot:request:{request_key}"
        if self.ctx.redis.set(key, op_id, nx=True, ex=REQUEST_TTL):
            return None
        earlier = self.ctx.redis.get(key)
        return earlier.decode() if isinstance(earlier, bytes) else earlier

    def forget(self, request_key: str) -> None:
        """Drop a request key whose operation could not be submitted."""
        self.ctx.redis.delete(f"{self.ctx.settings.redis.key_prefix}:bot:request:{request_key}")
