"""The manifest: the record, written last, that makes a backup exist."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from workers.core.ids import BACKUP_ID
from workers.core.model import Model

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
OBJECT_NAME_PATTERN = r"^[A-Za-z0-9._][A-Za-z0-9._/=-]*$"
"""What an object name inside a backup may look like."""
NAME_ESCAPE = "="
NAME_MARK = "_"
"""Starts a name whose first byte is escaped (object names may not start with ``=``)."""
_SAFE_BYTES = frozenset((string.ascii_letters + string.digits + "_.-").encode())
_ESCAPED = re.compile(r"=([0-9A-F]{2})")


def encode_name_part(text: str) -> str:
    """Any text as one object-name segment: ``-x`` -> ``_=2Dx``, ``données`` -> ``donn=C3=A9es``.

    Letters, digits, ``_``, ``.`` and ``-`` stay as they are (case included); every other
    UTF-8 byte becomes ``=XX``, ``=`` itself too. A first byte that is not a letter or digit
    is escaped as well (a leading ``-`` passes for an option, a ``.`` hides a file), behind
    ``_``. So the encoding is stable, never collides, and ``decode_name_part`` reverses it.
    """
    if not text:
        raise ValueError("an empty text has no object name")
    encoded = "".join(
        chr(byte)
        if byte in _SAFE_BYTES and not (index == 0 and byte in b"-._")
        else f"{NAME_ESCAPE}{byte:02X}"
        for index, byte in enumerate(text.encode("utf-8"))
    )
    return NAME_MARK + encoded if encoded.startswith(NAME_ESCAPE) else encoded


def decode_name_part(part: str) -> str:
    """The text ``encode_name_part`` made ``part`` from; ValueError if it made no such part."""
    body = part[1:] if part.startswith(NAME_MARK + NAME_ESCAPE) else part
    try:
        data = _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), body).encode("latin-1")
        decoded = data.decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise ValueError(f"{part!r} is not an encoded name") from None
    # Only the canonical form decodes: one text, one name, both ways.
    if not decoded or encode_name_part(decoded) != part:
        raise ValueError(f"{part!r} is not an encoded name")
    return decoded


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must carry a timezone")
    return value.astimezone(UTC)


class ObjectEntry(Model):
    """One stored object of a backup, as it lies in the store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=OBJECT_NAME_PATTERN)
    size: int = Field(ge=0, description="bytes as stored (after compression/encryption)")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    raw_size: int | None = Field(default=None, ge=0, description="bytes before the pipeline")
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        # The name becomes part of a store key: "." or ".." segments could point a
        # (tampered) manifest at another backup's objects or outside the store.
        if any(part in ("", ".", "..") for part in value.split("/")):
            raise ValueError(f"{value!r} is not a safe object name")
        return value


class VerificationState(StrEnum):
    """Outcome of a verification run."""

    PASSED = "passed"
    FAILED = "failed"


class VerificationRecord(Model):
    """One verification of a backup: checksums and archives, and with ``deep`` a scratch restore
    compared table by table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: VerificationState
    at: datetime
    deep: bool = False
    detail: str = ""
    checks: dict[str, Any] = Field(default_factory=dict)

    _at = field_validator("at")(_utc)


def best_verification(
    newest: VerificationRecord | None, deep: VerificationRecord | None
) -> VerificationRecord | None:
    """The record a backup is judged by, from its newest record and its newest deep one.

    A deep check (a scratch restore compared table by table) says more than a shallow one
    (checksums and archives) and covers it, so the deep record stands, pass or fail, unless
    a newer shallow check failed. Put plainly: a newer failure of either beats an older
    pass, a deep pass beats a shallow pass, and a shallow pass never clears a deep failure
    (it cannot see what the deep check found); only a newer deep pass does.
    """
    if newest is None or deep is None:
        return deep or newest
    if newest.state == VerificationState.FAILED and newest.at > deep.at:
        return newest
    return deep


class Manifest(Model):
    """Everything needed to trust, find and restore one backup."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    id: str
    component: str
    kind: str = Field(description="engine kind, e.g. postgres-logical, postgres-base, etcd")
    started_at: datetime
    finished_at: datetime
    objects: tuple[ObjectEntry, ...]
    compression: str | None = None
    encryption_recipients: tuple[str, ...] = ()
    tool_versions: dict[str, str] = Field(default_factory=dict)
    source: dict[str, Any] = Field(default_factory=dict, description="where the data came from")
    details: dict[str, Any] = Field(default_factory=dict, description="engine facts for verify")
    verification: VerificationRecord | None = Field(
        default=None,
        description="the newest verification, shallow or deep: the newest check of the "
        "checksums and archives, which a deep verification makes too",
    )
    deep_verification: VerificationRecord | None = Field(
        default=None,
        description="the newest deep verification (scratch restore and compare), kept when "
        "shallow ones follow it",
    )

    _started = field_validator("started_at")(_utc)
    _finished = field_validator("finished_at")(_utc)

    @model_validator(mode="before")
    @classmethod
    def _deep_record_kept(cls, data: Any) -> Any:
        # Manifests written before deep records were kept apart hold one record: when it is
        # a deep one, it is also the newest deep one.
        if isinstance(data, dict) and data.get("deep_verification") is None:
            record = data.get("verification")
            deep = record.get("deep") if isinstance(record, dict) else getattr(record, "deep", 0)
            if deep:
                data = {**data, "deep_verification": record}
        return data

    @model_validator(mode="after")
    def _deep_record_is_deep(self) -> Manifest:
        if self.deep_verification is not None and not self.deep_verification.deep:
            raise ValueError("deep_verification holds a shallow record")
        return self

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not BACKUP_ID.match(value):
            raise ValueError(f"{value!r} is not a backup id")
        return value

    @property
    def total_size(self) -> int:
        """Bytes stored for this backup, all objects together."""
        return sum(entry.size for entry in self.objects)

    @property
    def duration_seconds(self) -> float:
        """Wall time of the backup."""
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def verdict(self) -> VerificationRecord | None:
        """The record this backup is judged by (see :func:`best_verification`)."""
        return best_verification(self.verification, self.deep_verification)

    def verified(self, record: VerificationRecord) -> Manifest:
        """This manifest with ``record`` as its newest record; a shallow one keeps the deep one."""
        if record.deep:
            return self.model_copy(update={"verification": record, "deep_verification": record})
        return self.model_copy(update={"verification": record})

    def object(self, name: str) -> ObjectEntry:
        """The entry called ``name``; KeyError when absent."""
        for entry in self.objects:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def summary(self) -> BackupSummary:
        """The short form kept in the catalog index."""
        return BackupSummary(
            id=self.id,
            component=self.component,
            kind=self.kind,
            started_at=self.started_at,
            finished_at=self.finished_at,
            size=self.total_size,
            objects=len(self.objects),
            verification=self.verdict,
        )


class BackupSummary(Model):
    """One line of the catalog index: enough for status and list, no object list."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    component: str
    kind: str
    started_at: datetime
    finished_at: datetime
    size: int
    objects: int
    verification: VerificationRecord | None = Field(
        default=None, description="the record the backup is judged by (Manifest.verdict)"
    )

    @property
    def total_size(self) -> int:
        """Same as ``size``; mirrors Manifest for renderers."""
        return self.size


class CatalogIndex(Model):
    """The per-component index the store keeps so status never lists the bucket."""

    model_config = ConfigDict(extra="forbid")

    component: str
    backups: list[BackupSummary] = Field(default_factory=list)
    facts: dict[str, Any] = Field(
        default_factory=dict, description="engine facts, e.g. the last archived WAL time"
    )

    def upsert(self, summary: BackupSummary) -> None:
        """Add or replace a summary, keeping the list sorted oldest first."""
        self.backups = [b for b in self.backups if b.id != summary.id] + [summary]
        self.backups.sort(key=lambda b: (b.finished_at, b.id))

    def remove(self, backup_id: str) -> None:
        """Forget a backup (after prune)."""
        self.backups = [b for b in self.backups if b.id != backup_id]
