"""Pure facts about an etcd snapshot: its status, its key sample, the shape of its file."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

from pydantic import ConfigDict, Field

from workers.core.errors import IntegrityError
from workers.core.model import Model

BOLT_MAGIC = 0xED0CDAED
TRAILER = 32
"""etcd's Snapshot RPC ends the stream with the sha256 of the database before it."""
HEADER = 28
SAMPLE_SIZE = 20
"""Keys sampled from each end of the key space at backup time, compared by a deep verify."""


class _Model(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SnapshotStatus(_Model):
    """What ``etcdctl snapshot status`` says of a snapshot file."""

    hash: int
    revision: int
    total_keys: int = Field(description="bolt's key count: every revision kept, not live keys")
    total_size: int


class SampledKey(_Model):
    """One key as it was at the snapshot's revision: the revisions pin its exact version."""

    key: str
    create_revision: int
    mod_revision: int
    version: int


class KeyFacts(_Model):
    """The live keys at the snapshot's revision: how many, and a sample of them."""

    count: int
    sample: tuple[SampledKey, ...] = ()


class SnapshotFacts(_Model):
    """What the manifest records of one snapshot (``details``), for verify to compare with."""

    method: str = Field(description="etcdctl or k3s")
    status: SnapshotStatus
    keys: KeyFacts | None = Field(
        default=None, description="None when the revision was compacted before it was read"
    )


def parse_status(text: bytes | str) -> SnapshotStatus:
    """``etcdctl snapshot status -w json`` output as a SnapshotStatus."""
    try:
        raw = json.loads(text)
        return SnapshotStatus(
            hash=int(raw["hash"]),
            revision=int(raw["revision"]),
            total_keys=int(raw["totalKey"]),
            total_size=int(raw["totalSize"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"etcdctl snapshot status gave no status: {exc}") from None


def parse_range(text: bytes | str) -> tuple[int, list[SampledKey]]:
    """``etcdctl get -w json`` output: (the range's whole count, the keys returned)."""
    raw: dict[str, Any] = json.loads(text)
    keys = [
        SampledKey(
            key=base64.b64decode(kv["key"]).decode("utf-8", "backslashreplace"),
            create_revision=int(kv.get("create_revision", 0)),
            mod_revision=int(kv.get("mod_revision", 0)),
            version=int(kv.get("version", 0)),
        )
        for kv in raw.get("kvs", [])
    ]
    return int(raw.get("count", 0)), keys


def merge_sample(first: list[SampledKey], last: list[SampledKey]) -> tuple[SampledKey, ...]:
    """The keys from both ends of the key space, each once, in key order."""
    unique = {k.key: k for k in [*first, *last]}
    return tuple(unique[name] for name in sorted(unique))


def compare(expected: KeyFacts, count: int, found: dict[str, SampledKey]) -> list[str]:
    """What a restored etcd gets wrong against the manifest's facts (empty: all match)."""
    problems = []
    if count != expected.count:
        problems.append(f"restored etcd holds {count:,} keys, the backup had {expected.count:,}")
    for key in expected.sample:
        got = found.get(key.key)
        if got is None:
            problems.append(f"key {key.key!r} is missing")
        elif got != key:
            problems.append(
                f"key {key.key!r} is at revision {got.mod_revision}, expected {key.mod_revision}"
            )
    return problems


def trailer_expected(header: bytes, size: int, name: str) -> bool:
    """Whether the file ends in etcd's sha256 trailer; IntegrityError if it is not a snapshot.

    A bolt file is whole pages; a snapshot from the API adds 32 bytes. Anything else was cut
    short (or padded), which ``etcdctl snapshot status`` itself may only answer with a crash.
    """
    if len(header) < HEADER:
        raise IntegrityError(f"snapshot {name} is truncated: {size} bytes is no etcd database")
    magic, _version, page = struct.unpack("<III", header[16:HEADER])
    if magic != BOLT_MAGIC:
        raise IntegrityError(f"snapshot {name} is not an etcd database (no bolt header)")
    if page < 512 or page & (page - 1):
        raise IntegrityError(f"snapshot {name} is not an etcd database (page size {page})")
    if size % page not in (0, TRAILER) or size < 2 * page:
        raise IntegrityError(
            f"snapshot {name} is truncated: {size:,} bytes is not whole {page}-byte pages",
            hint="take a new snapshot, or verify an older backup",
        )
    return size % page == TRAILER


def status_failure(name: str, stderr_tail: str, code: int) -> IntegrityError:
    """A failed ``snapshot status`` as one clear line (its crash dumps say nothing to people)."""
    lines = [line.strip() for line in stderr_tail.splitlines() if line.strip()]
    said = next((line for line in lines if line.startswith(("Error:", "fatal error:"))), "")
    reason = said.split(":", 1)[1].strip() if said else f"etcdctl exited with status {code}"
    return IntegrityError(
        f"snapshot {name} is damaged: etcdctl snapshot status failed ({reason})",
        hint="verify an older backup, or take a new snapshot",
    )
