"""The context object that carries settings, clock and lazily-built clients into work."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from workers.core.config import Settings, shown_url
from workers.core.errors import RedisUnavailable

if TYPE_CHECKING:
    from workers.storage.repository import Repository


def redis_unavailable(url: str | None, exc: BaseException, hint: str) -> RedisUnavailable | None:
    """``exc`` as one line naming the URL (never its password) if Redis could not be reached."""
    import redis

    if not isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return None
    reason = " ".join(str(exc).split()) or type(exc).__name__
    where = f" at {shown_url(url)}" if url else ""
    return RedisUnavailable(f"Redis{where} is unreachable: {reason}", hint=hint)


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
    _redis_url: str | None = field(default=None, repr=False)

    @property
    def repo(self) -> Repository:
        """The backup repository."""
        if self._repo is None:
            from workers.storage.configured import open_repository

            self._repo = open_repository(self.settings, self.clock)
        return self._repo

    @property
    def redis(self) -> Any:
        """A Redis client: the configured URL, else the embedded server or the machine's."""
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.redis_url)
        return self._redis

    @property
    def redis_url(self) -> str:
        """The Redis this process talks to: configured, else the embedded one or the machine's."""
        if self._redis_url is None:
            from workers.state.embedded_redis import resolve_url

            self._redis_url = resolve_url(self.settings)
        return self._redis_url
