"""Backups made for repository tests: a clock moved by hand, sample data, one-call commits."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from workers.core.manifest import Manifest
from workers.storage.repository import Repository

START = datetime(2026, 11, 24, 3, 0, 12, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def data(size: int, seed: int = 1) -> bytes:
    """Compressible but not trivial bytes, reproducible."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(1, 6)).hex().encode() for _ in range(200)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def chunks(blob: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(blob), size):
        yield blob[start : start + size]


def commit_one(
    repo: Repository,
    clock: Clock,
    objects: dict[str, bytes] | None = None,
    component: str = "postgres",
) -> Manifest:
    """Commit a backup with the given objects (name -> bytes), one minute after the last."""
    clock.tick(minutes=1)
    with repo.begin(component, "postgres-logical") as writer:
        for name, blob in (objects or {"dump": data(1000)}).items():
            writer.write(name, chunks(blob))
        clock.tick(seconds=30)
        return writer.commit(source={"host": "db"}, tool_versions={"pg_dump": "15.8"})
