"""The relay's shared memory in Redis: which message shows which operation, locks, rate tokens.

Every relay replica reads and writes the same records, so whichever replica gets an event
finds the operation's message (channel, ts), what it last showed, and which thread replies
were already posted; per-operation locks and Redis-timed tokens keep replicas from racing
each other or Slack's rate limits.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ConfigDict, Field

from bot.replies.progress import OperationView
from workers.core.model import Model

RECORD_TTL = 7 * 86400
LOCK_MS = 30_000
"""An operation's lock outlives any one Slack call (whose timeout is 10 s)."""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class MessageRecord(Model):
    """An operation's message: where it is, what it shows, what its thread already holds."""

    model_config = ConfigDict(extra="ignore")

    op_id: str
    channel: str
    ts: str | None = None
    view: OperationView
    rendered: str | None = Field(default=None, description="digest of the last shown payload")
    threaded: list[str] = Field(default_factory=list, description="stream ids posted in thread")
    thread_ts: str | None = Field(default=None, description="the thread it lives in (a card's)")
    posting: bool = Field(
        default=False, description="a post went out and no answer came back: it may be in Slack"
    )
    unsure: list[str] = Field(
        default_factory=list, description="stream ids whose thread post got no answer"
    )


class MessageBook:
    """Records, locks and rate tokens under ``<prefix>:relay:…``."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}:relay"
        self._release = redis.register_script(_RELEASE)

    def load(self, op_id: str) -> MessageRecord | None:
        """The operation's record, if a replica has written one."""
        raw = self.redis.get(f"{self.prefix}:op:{op_id}")
        return MessageRecord.model_validate_json(raw) if raw else None

    def save(self, record: MessageRecord) -> None:
        """Store the record (kept for a week: long enough for any late event)."""
        self.redis.set(f"{self.prefix}:op:{record.op_id}", record.model_dump_json(), ex=RECORD_TTL)

    def where(self, op_id: str) -> tuple[str, str] | None:
        """The (channel, ts) of the operation's message, once posted."""
        record = self.load(op_id)
        if record is None or record.ts is None:
            return None
        return record.channel, record.ts

    @contextmanager
    def lock(self, op_id: str) -> Iterator[bool]:
        """Hold the operation's lock for the block; yields False when another replica has it."""
        key = f"{self.prefix}:lock:{op_id}"
        token = secrets.token_hex(8)
        held = bool(self.redis.set(key, token, nx=True, px=LOCK_MS))
        try:
            yield held
        finally:
            if held:
                self._release(keys=[key], args=[token])

    def take(self, kind: str, name: str, interval_ms: int) -> float:
        """Take the token for ``kind``/``name``: 0.0 if taken, else seconds until it frees."""
        key = f"{self.prefix}:{kind}:{name}"
        if self.redis.set(key, "1", nx=True, px=interval_ms):
            return 0.0
        left = self.redis.pttl(key)
        return max(left, 1) / 1000 if left and left > 0 else 0.05

    def hold(self, kind: str, name: str, seconds: float) -> None:
        """Keep ``kind``/``name`` closed for ``seconds`` (a Retry-After from Slack)."""
        self.redis.set(f"{self.prefix}:{kind}:{name}", "1", px=max(1, int(seconds * 1000)))
