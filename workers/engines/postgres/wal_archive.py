"""The WAL archive barman-cloud keeps in S3: WAL file names, lookups, and chain continuity."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from workers.core.config import StorageSettings
from workers.storage.store_s3 import make_s3_client, storage_errors

WAL_NAME = re.compile(
    r"^(?P<tli>[0-9A-F]{8})"
    r"(?:(?P<log>[0-9A-F]{8})(?P<seg>[0-9A-F]{8})(?:\.[0-9A-F]{8}\.backup|\.partial)?|\.history)$"
)
SEGMENT_NAME = re.compile(r"^[0-9A-F]{24}$")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".snappy", ".zst", ".lz4")
# archive_command and the restore pre-check must answer fast; a hung store is a failure.
QUICK_CONNECT_TIMEOUT = timedelta(seconds=3)
QUICK_READ_TIMEOUT = timedelta(seconds=10)
QUICK_ATTEMPTS = 2


def is_wal_name(name: str) -> bool:
    """Whether PostgreSQL archives files so named: segment, history, backup label, partial."""
    return WAL_NAME.match(name) is not None


def is_segment(name: str) -> bool:
    """Whether ``name`` is a plain WAL segment (24 hex digits)."""
    return SEGMENT_NAME.match(name) is not None


def hash_dir(name: str) -> str:
    """barman's sub-directory for a WAL file: timeline+log for segments, none for history."""
    match = WAL_NAME.match(name)
    if match is None or match.group("log") is None:
        return ""
    return name[:16]


def strip_compression(name: str) -> str:
    """A stored WAL file name without barman's compression suffix."""
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True, order=True)
class Segment:
    """A WAL segment's position: timeline, log and segment number."""

    timeline: int
    log: int
    seg: int

    @classmethod
    def parse(cls, name: str) -> Segment:
        """The segment named ``name``; ValueError for anything else."""
        if not is_segment(name):
            raise ValueError(f"{name!r} is not a WAL segment name")
        return cls(int(name[:8], 16), int(name[8:16], 16), int(name[16:], 16))

    @property
    def name(self) -> str:
        """The 24-character file name."""
        return f"{self.timeline:08X}{self.log:08X}{self.seg:08X}"

    @classmethod
    def holding(cls, lsn: str, timeline: int, segment_size: int) -> Segment:
        """The segment of ``timeline`` that holds WAL position ``lsn`` (``16/B374D848``)."""
        high, low = lsn.split("/")
        number = ((int(high, 16) << 32) + int(low, 16)) // segment_size
        per_log = 0x100000000 // segment_size
        return cls(timeline, number // per_log, number % per_log)

    def next(self, segment_size: int) -> Segment:
        """The segment after this one on the same timeline."""
        per_log = 0x100000000 // segment_size
        if self.seg + 1 >= per_log:
            return Segment(self.timeline, self.log + 1, 0)
        return Segment(self.timeline, self.log, self.seg + 1)


@dataclass(frozen=True)
class ChainCheck:
    """How far the WAL chain from a backup's first segment runs without a gap."""

    first: str
    last_contiguous: str | None
    missing: str | None
    newest: str | None

    @property
    def continuous(self) -> bool:
        """True when no segment is missing between the first and the newest archived one."""
        return self.last_contiguous is not None and self.missing is None


def check_chain(names: Iterable[str], first: str, segment_size: int) -> ChainCheck:
    """Walk the segments of ``first``'s timeline from ``first`` and report the first gap."""
    start = Segment.parse(first)
    present = {
        Segment.parse(n) for n in names if is_segment(n) and int(n[:8], 16) == start.timeline
    }
    later = sorted(s for s in present if s >= start)
    if not later or later[0] != start:
        return ChainCheck(first, None, first, later[-1].name if later else None)
    current = start
    while current.next(segment_size) in present:
        current = current.next(segment_size)
    newest = later[-1]
    missing = None if current == newest else current.next(segment_size).name
    return ChainCheck(first, current.name, missing, newest.name)


class WalArchive:
    """Read-only look at ``<archive>/<server>/wals/`` in the bucket barman-cloud writes to."""

    def __init__(
        self, storage: StorageSettings, key_prefix: str, server_name: str, client: Any = None
    ) -> None:
        self.storage = storage
        self.bucket = storage.bucket
        self.wals = f"{key_prefix.strip('/')}/{server_name}/wals/".lstrip("/")
        self.client = client if client is not None else make_s3_client(quick(storage))

    def describe(self) -> str:
        """Where the archive is, without credentials."""
        return f"s3://{self.bucket}/{self.wals} at {self.storage.endpoint_url or 'aws'}"

    def find(self, name: str) -> str | None:
        """The key of an archived WAL file (any compression), or None."""
        prefix = f"{self.wals}{hash_dir(name)}/{name}" if hash_dir(name) else f"{self.wals}{name}"
        with storage_errors("look up WAL", self.describe()):
            reply = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=20)
        for item in reply.get("Contents", []):
            if strip_compression(item["Key"].rsplit("/", 1)[-1]) == name:
                return str(item["Key"])
        return None

    def names(self) -> list[str]:
        """Every archived WAL file name (compression suffix removed), in key order."""
        found: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        with storage_errors("list WAL", self.describe()):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.wals):
                for item in page.get("Contents", []):
                    found.append(strip_compression(item["Key"].rsplit("/", 1)[-1]))
        return found


def quick(storage: StorageSettings) -> StorageSettings:
    """Storage settings with short timeouts and few retries, for paths that must answer fast."""
    return storage.model_copy(
        update={
            "connect_timeout": min(storage.connect_timeout, QUICK_CONNECT_TIMEOUT),
            "read_timeout": min(storage.read_timeout, QUICK_READ_TIMEOUT),
            "max_attempts": min(storage.max_attempts, QUICK_ATTEMPTS),
        }
    )
