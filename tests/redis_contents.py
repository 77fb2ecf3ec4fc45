"""What a Redis database holds, for asserting that a secret is nowhere in it."""

from __future__ import annotations

from typing import Any

import redis as redis_lib


def everything_in(client: redis_lib.Redis) -> bytes:
    """Every value of every key, whatever its type, as one byte string."""
    parts: list[Any] = []
    for key in client.keys("*"):
        kind = client.type(key)
        if kind == b"string":
            parts.append(client.get(key) or b"")
        elif kind == b"hash":
            parts += client.hvals(key)
        elif kind == b"list":
            parts += client.lrange(key, 0, -1)
        elif kind == b"set":
            parts += client.smembers(key)
        elif kind == b"zset":
            parts += client.zrange(key, 0, -1)
        elif kind == b"stream":
            parts += [v for _, fields in client.xrange(key) or [] for v in (fields or {}).values()]
    return b"\n".join(p if isinstance(p, bytes) else str(p).encode() for p in parts)
