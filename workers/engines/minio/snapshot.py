"""Pure policy of MinIO snapshots: entries, what a run must copy, what a restore must write."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import ConfigDict, Field

from workers.core.errors import UsageError
from workers.core.manifest import BackupSummary
from workers.core.model import Model

KIND = "minio-snapshot"
KEYS_OBJECT = "keys.jsonl"
"""The object of a snapshot backup that lists every key it holds."""
BLOBS = "blobs"
RUNS = "runs"
SHA256 = r"^[0-9a-f]{64}$"


class Entry(Model):
    """One object of the source as a snapshot holds it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bucket: str
    key: str
    size: int = Field(ge=0)
    etag: str
    modified: datetime
    sha256: str = Field(pattern=SHA256)

    @property
    def where(self) -> tuple[str, str]:
        """(bucket, key): the entry's identity."""
        return (self.bucket, self.key)


class Listed(Model):
    """One object as a ListObjectsV2 page shows it (no body read)."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    size: int
    etag: str
    modified: datetime


def blob_key(component: str, sha256: str) -> str:
    """Where a blob lives in the backup store: ``<component>/blobs/<sha256>``."""
    return f"{component}/{BLOBS}/{sha256}"


def run_key(component: str, backup_id: str) -> str:
    """The marker a snapshot in progress keeps, so GC waits for it."""
    return f"{component}/{RUNS}/{backup_id}"


def unchanged(listed: Listed, before: Entry | None) -> bool:
    """Whether an object is the same as in the previous snapshot (same size and ETag)."""
    return before is not None and before.size == listed.size and before.etag == listed.etag


@dataclass
class RunPlan:
    """What a snapshot run does: entries carried over, objects to read and copy."""

    kept: list[Entry] = field(default_factory=list)
    to_copy: list[Listed] = field(default_factory=list)


def plan_run(listed: Iterable[Listed], previous: Mapping[tuple[str, str], Entry]) -> RunPlan:
    """Split the source listing into carried-over entries and objects to copy."""
    plan = RunPlan()
    for item in listed:
        before = previous.get((item.bucket, item.key))
        if unchanged(item, before):
            assert before is not None
            plan.kept.append(before.model_copy(update={"modified": item.modified}))
        else:
            plan.to_copy.append(item)
    return plan


def dump_entries(entries: Iterable[Entry]) -> Iterator[bytes]:
    """Entries as JSON lines, sorted by bucket and key, in chunks for a streamed write."""
    batch: list[str] = []
    for entry in sorted(entries, key=lambda e: e.where):
        batch.append(entry.model_dump_json())
        if len(batch) >= 1000:
            yield ("\n".join(batch) + "\n").encode()
            batch = []
    if batch:
        yield ("\n".join(batch) + "\n").encode()


def load_entries(lines: Iterable[bytes]) -> list[Entry]:
    """The entries of a keys listing (the inverse of ``dump_entries``)."""
    text = b"".join(lines).decode()
    return [Entry.model_validate(json.loads(line)) for line in text.splitlines() if line]


def as_of(backups: Sequence[BackupSummary], point: datetime) -> BackupSummary:
    """The newest snapshot that finished at or before ``point``; UsageError when none did."""
    before = [b for b in backups if b.finished_at <= point]
    if not before:
        first = min((b.finished_at for b in backups), default=None)
        since = f"; the first was taken {first:%Y-%m-%d %H:%M} UTC" if first else ""
        raise UsageError(
            f"no snapshot was taken at or before {point:%Y-%m-%d %H:%M} UTC{since}",
            hint="pick a later time, or list the snapshots",
        )
    return max(before, key=lambda b: (b.finished_at, b.id))


@dataclass
class RestoreCounts:
    """What a restore writes into its target: the dry-run answer and the card's figures."""

    create: int = 0
    overwrite: int = 0
    unchanged: int = 0
    delete: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts by name, for events and the approval card."""
        return {
            "create": self.create,
            "overwrite": self.overwrite,
            "unchanged": self.unchanged,
            "delete": self.delete,
            "bytes": self.bytes,
        }


@dataclass
class RestorePlan:
    """The writes and deletes of one restore into one target bucket."""

    writes: list[Entry] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    counts: RestoreCounts = field(default_factory=RestoreCounts)


def plan_restore(
    entries: Iterable[Entry], target: Mapping[str, tuple[int, str]], *, prune: bool
) -> RestorePlan:
    """Compare the snapshot with the target's listing (key -> size, ETag).

    An object of the same size and ETag is left alone; nothing is deleted unless ``prune``.
    """
    plan = RestorePlan()
    wanted: set[str] = set()
    for entry in entries:
        wanted.add(entry.key)
        present = target.get(entry.key)
        if present is not None and present == (entry.size, entry.etag):
            plan.counts.unchanged += 1
            continue
        if present is None:
            plan.counts.create += 1
        else:
            plan.counts.overwrite += 1
        plan.counts.bytes += entry.size
        plan.writes.append(entry)
    if prune:
        plan.deletes = sorted(key for key in target if key not in wanted)
        plan.counts.delete = len(plan.deletes)
    return plan


def collectable(
    stored: Mapping[str, datetime],
    referenced: set[str],
    *,
    now: datetime,
    grace: timedelta,
    running: Sequence[datetime],
) -> list[str]:
    """Blobs GC may delete: unreferenced, older than the grace period, no snapshot running.

    A run younger than the grace period may reference any blob it found or wrote, so while
    one is in progress nothing is collected; a run marker older than that is a killed run.
    """
    if any(now - started < grace for started in running):
        return []
    cutoff = now - grace
    return sorted(sha for sha, at in stored.items() if sha not in referenced and at < cutoff)


def sample(entries: Sequence[Entry], count: int, seed: str) -> list[Entry]:
    """A stable sample of ``count`` distinct blobs' entries (all when ``count`` covers them)."""
    import random

    unique = list({e.sha256: e for e in entries}.values())
    if count >= len(unique):
        return unique
    return random.Random(seed).sample(unique, count)
