"""The manifest: the record, written last, that makes a backup exist."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workers.core.ids import BACKUP_ID

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


class ObjectEntry(BaseModel):
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


class VerificationRecord(BaseModel):
    """The last verification of a backup (checksums, and deeper checks when asked)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: VerificationState
    at: datetime
    deep: bool = False
    detail: str = ""
    checks: dict[str, Any] = Field(default_factory=dict)

    _at = field_validator("at")(_utc)


class Manifest(BaseModel):
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
    verification: VerificationRecord | None = None

    _started = field_validator("started_at")(_utc)
    _finished = field_validator("finished_at")(_utc)

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
            verification=self.verification,
        )


class BackupSummary(BaseModel):
    """One line of the catalog index: enough for status and list, no object list."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    component: str
    kind: str
    started_at: datetime
    finished_at: datetime
    size: int
    objects: int
    verification: VerificationRecord | None = None

    @property
    def total_size(self) -> int:
        """Same as ``size``; mirrors Manifest for renderers."""
        return self.size


class CatalogIndex(BaseModel):
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
