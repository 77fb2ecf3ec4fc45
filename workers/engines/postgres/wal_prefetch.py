"""The WAL prefetcher: one process that keeps restore_command's spool ahead of replay.

A point-in-time restore starts it before the base backup downloads, and stops it once the
instance is promoted (or the restore fails). It lists the archive once from the base
backup's first segment, writes that listing to the spool (``.prefetch.json``), and keeps
the next ``DEPTH`` segments there, ``PARALLEL`` downloads at a time. Each file is
downloaded, decompressed and checked (size and first page header) in memory, then written
under a hidden name and renamed: the spool only ever holds whole, verified segments.

restore_command's lean answer (fetch_spool) reads the listing: it waits for a segment the
prefetcher will bring, and answers "not archived" for history files and segments past the
end at once. A prefetcher that dies just stops refreshing ``.prefetch.alive``; the lean
answer then leaves every call to the full ``wal-fetch``, so nothing is lost.

pgBackRest's asynchronous archive-get works the same way (a queue of segments, a bounded
size, a background process): see its documentation for ``archive-get-queue-max``.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import json
import lzma
import os
import shutil
import signal
import struct
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from workers import process
from workers.core.config import Settings
from workers.core.errors import IntegrityError
from workers.engines.postgres import barman_cloud, fetch_spool, wal_archive
from workers.engines.postgres.cluster import hand_over
from workers.storage.store_s3 import make_s3_client, storage_errors

DEPTH = 16
"""Segments kept ahead of replay: the spool's bound on disk (16 x 16 MiB)."""
PARALLEL = 4
TICK = 0.02
STOP_WAIT = 10.0
BEGIN = ".prefetch.begin"
"""Written by the restore: the first segment replay needs, and the segment size."""
XLP_LONG_HEADER = 0x0002
LONG_HEADER = struct.Struct("<HHIQI4xQII")
"""XLogLongPageHeaderData: magic, info, tli, pageaddr, rem_len, (pad), sysid, seg_size, blcksz."""
_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "": lambda data: data,
    ".zst": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
    ".gz": gzip.decompress,
    ".bz2": bz2.decompress,
    ".xz": lzma.decompress,
}
"""The compressions fetched here; others (snappy, lz4) are left to barman."""


@dataclass(frozen=True)
class Plan:
    """What one listing of the archive says from the base backup's first segment on."""

    start: str
    archived: tuple[str, ...]
    """Every WAL name the listing covers (segments from ``start``, history files)."""
    queue: tuple[tuple[str, str], ...]
    """Segments to prefetch, in replay order, each with its object key."""

    def to_json(self) -> dict[str, Any]:
        """The state the lean answer reads (fetch_spool.prefetch_state)."""
        return {
            "start": self.start,
            "archived": list(self.archived),
            "queue": [name for name, _ in self.queue],
            "pid": os.getpid(),
        }


def plan(listing: Iterable[tuple[str, str]], start: str) -> Plan:
    """The plan from ``(name, key)`` pairs of the archive and the first segment replay needs."""
    archived: set[str] = set()
    queue: list[tuple[tuple[int, int, int], str, str]] = []
    for name, key in listing:
        wanted = name.removesuffix(".partial")
        if not fetch_spool.covered(wanted, start):
            continue
        archived.add(wanted)
        if wal_archive.is_segment(name) and _suffix(key) in _DECOMPRESS:
            segment = wal_archive.Segment.parse(name)
            queue.append(((segment.log, segment.seg, segment.timeline), name, key))
    queue.sort()
    return Plan(start, tuple(sorted(archived)), tuple((n, k) for _, n, k in queue))


def _suffix(key: str) -> str:
    base = key.rsplit("/", 1)[-1]
    return base[len(wal_archive.strip_compression(base)) :]


def verify_segment(name: str, data: bytes, segment_size: int) -> None:
    """Raise IntegrityError unless ``data`` is the whole segment ``name`` (size, first page)."""
    if len(data) != segment_size:
        raise IntegrityError(f"WAL segment {name}: {len(data)} bytes, expected {segment_size}")
    _, info, _, pageaddr, _, _, seg_size, _ = LONG_HEADER.unpack_from(data)
    segment = wal_archive.Segment.parse(name)
    expected = segment.log * 0x100000000 + segment.seg * segment_size
    if not info & XLP_LONG_HEADER or seg_size != segment_size or pageaddr != expected:
        raise IntegrityError(
            f"WAL segment {name}: its first page is not that segment's "
            f"(page address {pageaddr:X}, segment size {seg_size})"
        )


def decompress(key: str, packed: bytes) -> bytes:
    """An archived object's content, by the compression its key names."""
    try:
        return _DECOMPRESS[_suffix(key)](packed)
    except (zstandard.ZstdError, OSError, EOFError, lzma.LZMAError) as exc:
        raise IntegrityError(f"{key} does not decompress: {exc}") from exc


class Prefetcher:
    """Keeps the spool ``DEPTH`` segments ahead of what replay has taken."""

    def __init__(self, settings: Settings, component: str, spool: Path):
        target = barman_cloud.target_for(settings, component)
        self.archive = barman_cloud.wal_archive(settings, target)
        self.client = make_s3_client(settings.storage)
        self.spool = spool
        self.segment_size = 0

    def await_begin(self, parent: int) -> tuple[str, int] | None:
        """The first segment and segment size, once the restore knows its base backup."""
        while os.getppid() == parent:
            with contextlib.suppress(OSError, ValueError):
                begin = json.loads((self.spool / BEGIN).read_bytes())
                return str(begin["start"]), int(begin["segment_size"])
            time.sleep(TICK)
        return None

    def listing(self, start: str) -> list[tuple[str, str]]:
        """``(name, key)`` of every archived file on ``start``'s timeline and later ones."""
        found: list[tuple[str, str]] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.archive.bucket,
            Prefix=self.archive.wals,
            StartAfter=f"{self.archive.wals}{start[:8]}",
        )
        with storage_errors("list WAL", self.archive.describe()):
            for page in pages:
                for item in page.get("Contents", []):
                    key = str(item["Key"])
                    found.append((wal_archive.strip_compression(key.rsplit("/", 1)[-1]), key))
        return found

    def run(self, start: str, segment_size: int, parent: int) -> None:
        """List, publish the plan, and fill the spool until stopped or ``parent`` is gone."""
        self.segment_size = segment_size
        work = plan(self.listing(start), start)
        _write_atomic(self.spool / fetch_spool.STATE, json.dumps(work.to_json()).encode())
        keys = dict(work.queue)
        queue = Queue([name for name, _ in work.queue])
        running: dict[str, Future[bool]] = {}
        with ThreadPoolExecutor(PARALLEL, thread_name_prefix="wal-prefetch") as pool:
            while os.getppid() == parent:
                os.utime(self._touch(), None)
                # Finished downloads first, the spool after: a delivered name missing from
                # the listing below has then truly been taken by restore_command.
                for name in [n for n, f in running.items() if f.done()]:
                    queue.finished(name, running.pop(name).result())
                present = set(os.listdir(self.spool))
                wanted = _take_hint(self.spool)
                if wanted is not None:
                    queue.wanted(wanted, present, set(running))
                for name in queue.stale(present):
                    (self.spool / name).unlink(missing_ok=True)
                for name in queue.due(present, set(running)):
                    running[name] = pool.submit(self._fetch_one, name, keys[name])
                time.sleep(TICK)
            for future in running.values():
                future.cancel()

    def _touch(self) -> Path:
        alive = self.spool / fetch_spool.ALIVE
        if not alive.exists():
            _write_atomic(alive, b"")
        return alive

    def _fetch_one(self, name: str, key: str) -> bool:
        try:
            with storage_errors("fetch WAL", self.archive.describe()):
                reply = self.client.get_object(Bucket=self.archive.bucket, Key=key)
                packed = reply["Body"].read()
            data = decompress(key, packed)
            verify_segment(name, data, self.segment_size)
            _write_atomic(self.spool / name, data)
        except Exception as exc:  # noqa: BLE001 - a thread's edge: the mark says why
            # restore_command then asks the full wal-fetch for it (barman, with its errors).
            _write_atomic(Path(fetch_spool.failed_mark(self.spool, name)), str(exc).encode())
            print(f"wal-prefetch: {name}: {exc}", file=sys.stderr)
            return False
        return True


class Queue:
    """Where replay is in the prefetch queue, read from the spool; what to fetch or drop.

    A delivered segment that left the spool was taken by restore_command: replay is past
    it. The window is the ``DEPTH`` segments from there. restore_command's hint (the
    segment it waits for) moves the window there; a hint for a segment taken long ago
    means replay started over (a restart, or a second recovery pass): it is fetched again.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.order = {name: i for i, name in enumerate(names)}
        self.delivered: set[str] = set()
        self.failed: set[str] = set()
        self.anchor = 0

    def finished(self, name: str, ok: bool) -> None:
        """A download ended: in the spool, or marked failed."""
        (self.delivered if ok else self.failed).add(name)

    def position(self, present: set[str]) -> int:
        """The queue index of the next segment replay will ask for."""
        taken = [self.order[n] + 1 for n in self.delivered if n not in present]
        return max([self.anchor, *taken])

    def wanted(self, name: str, present: set[str], running: set[str]) -> None:
        """restore_command is waiting for ``name``.

        Delivered and no longer in the spool: replay took it and asks again (it started
        over, from that segment or an earlier one): it and the segments after it are
        fetched again. The last segment taken counts too: a second recovery pass that
        starts at the restartpoint of the first asks for exactly that one first.
        """
        at = self.order.get(name)
        if at is None:
            return
        if name in self.delivered and name not in present | running:
            self.delivered = {n for n in self.delivered if n in present or self.order[n] < at}
        self.anchor = at

    def stale(self, present: set[str]) -> list[str]:
        """Spooled segments replay went past (another timeline's): to delete."""
        position = self.position(present)
        return [n for n in present if self.order.get(n, position) < position]

    def due(self, present: set[str], running: set[str]) -> list[str]:
        """Segments of the window neither spooled, nor downloading, nor taken, nor failed."""
        position = self.position(present)
        busy = present | running | self.delivered | self.failed
        return [n for n in self.names[position : position + DEPTH] if n not in busy]


def _take_hint(spool: Path) -> str | None:
    """The segment restore_command waits for, if it said so since the last look."""
    taken = spool / f"{fetch_spool.WANTED}.taken"
    try:
        os.replace(spool / fetch_spool.WANTED, taken)
        return taken.read_text().strip()
    except OSError:
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    """Write under a hidden name, hand to PostgreSQL's user, rename: readers see all or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
    os.chmod(tmp, 0o644 if path.name.startswith(".") else 0o600)
    hand_over(tmp)
    os.replace(tmp, path)


def serve(settings: Settings, component: str, spool: Path) -> None:
    """``wal-prefetch``: run until SIGTERM (exit at once) or until its restore is gone."""
    prefetcher = Prefetcher(settings, component, spool)

    def stop(_signum: int, _frame: Any) -> None:
        # At once: downloads in flight are for a restore that has ended, and their work
        # files have hidden names in a spool that the restore removes.
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    parent = os.getppid()
    begin = prefetcher.await_begin(parent)
    if begin is not None:
        prefetcher.run(*begin, parent)


class Running:
    """The prefetcher process of one restore, from start to stop (and its spool).

    It starts before the restore has chosen its base backup, so that its own start-up
    (Python, settings, a client) is done when ``begin`` names the first segment.
    """

    def __init__(self, config: Path, component: str, spool: Path):
        self.config = config
        self.spool = spool
        spool.mkdir(mode=0o700)
        hand_over(spool)
        argv = [sys.executable, "-m", "bot.cli", "--config", str(config), "wal-prefetch"]
        argv += ["--component", component, "--spool", str(spool)]
        self.child = process.spawn(argv)

    def begin(self, start: str, segment_size: int) -> None:
        """List the archive from segment ``start`` on and start downloading."""
        doc = {"start": start, "segment_size": segment_size}
        _write_atomic(self.spool / BEGIN, json.dumps(doc).encode())

    def stop(self) -> None:
        """End the process, wait for it, and remove the spool with whatever it still holds."""
        process.stop(self.child, STOP_WAIT)
        shutil.rmtree(self.spool, ignore_errors=True)
