"""The context object that carries settings, clock and lazily-built clients into work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from workers.core.config import Settings

if TYPE_CHECKING:
    from workers.adapters.repository import Repository


def utc_now() -> datetime:
    """The real clock, timezone-aware."""
    return datetime.now(UTC)


@dataclass
class Context:
    """Settings plus clients, built on first use so front doors stay light."""

    settings: Settings
    clock: Callable[[], datetime] = utc_now
    _repo: Repository | None = field(default=None, repr=False)
    _redis: Any = field(default=None, repr=False)

    @property
    def repo(self) -> Repository:
        """The backup repository."""
        if self._repo is None:
            from workers.adapters.storage import open_repository

            self._repo = open_repository(self.settings, self.clock)
        return self._repo

    @property
    def redis(self) -> Any:
        """A Redis client: the configured URL, else the embedded server or the machine's."""
        if self._redis is None:
            import redis

            from workers.adapters.embedded_redis import resolve_url

            self._redis = redis.Redis.from_url(resolve_url(self.settings))
        return self._redis
