"""The audit log's records and hash chain: append-only, each record sealing the one before.

``hash = sha256(prev_hash + canonical(record))`` where ``canonical`` is the record's JSON
with sorted keys and no spaces, its own ``hash`` left out. Changing, removing, inserting or
reordering any record breaks the chain at that record, and :func:`verify_chain` names it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator

from workers.core.model import Model
from workers.core.restore_plan import canonical_json, utc

GENESIS = "0" * 64
"""The ``prev_hash`` of the first record."""


class AuditAction(StrEnum):
    """Everything the audit log records."""

    REQUEST = "restore.request"
    APPROVE = "restore.approve"
    DENY = "restore.deny"
    EXPIRE = "restore.expire"
    EXECUTE = "restore.execute"
    FINISH = "restore.finish"
    FAIL = "restore.fail"
    REFUSE = "restore.refuse"
    BREAK_GLASS = "restore.break-glass"
    REVIEW = "restore.review"
    ROLE_REFUSAL = "role.refusal"
    PRUNE_DELETE = "prune.delete"
    SECRET_ROTATE = "secret.rotate"


class AuditEntry(Model):
    """What happened, by whom, to what: the part of a record a caller supplies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: datetime
    action: AuditAction
    actor: str = Field(description="a Slack user id, a CLI identity, or a worker/system name")
    subject: str | None = Field(default=None, description="request, backup or operation id")
    component: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    _at = field_validator("at")(utc)


class AuditRecord(AuditEntry):
    """One sealed record of the chain."""

    seq: int = Field(ge=1)
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")

    def canonical(self) -> bytes:
        """The record's canonical bytes (everything but its own hash)."""
        return canonical_json(self.model_dump(mode="json", exclude={"hash"}))

    def expected_hash(self) -> str:
        """What the hash must be, given ``prev_hash`` and the content."""
        return chain_hash(self.prev_hash, self.canonical())

    def line(self) -> str:
        """The record as one JSON line (how it is stored and exported)."""
        return canonical_json(self.model_dump(mode="json")).decode()


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """sha256(prev_hash + canonical), hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


def seal(entry: AuditEntry, *, seq: int, prev_hash: str) -> AuditRecord:
    """The entry as record number ``seq``, chained to the record whose hash is ``prev_hash``."""
    draft = AuditRecord(**entry.model_dump(), seq=seq, prev_hash=prev_hash, hash=GENESIS)
    return draft.model_copy(update={"hash": draft.expected_hash()})


class ChainReport(Model):
    """The result of checking a chain: how far it holds and, if broken, where and why."""

    model_config = ConfigDict(frozen=True)

    checked: int
    head: str = GENESIS
    broken_at: int | None = Field(default=None, description="1-based position of the record")
    broken_seq: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        """Whether every record chains to the one before."""
        return self.broken_at is None

    def describe(self) -> str:
        """One line for people."""
        if self.ok:
            return f"audit chain intact: {self.checked} records, head {self.head[:12]}"
        seq = f" (seq {self.broken_seq})" if self.broken_seq is not None else ""
        return f"audit chain broken at record {self.broken_at}{seq}: {self.problem}"


def parse_record(line: str | bytes) -> AuditRecord:
    """One stored line as a record; ValueError when it is not one."""
    try:
        return AuditRecord.model_validate(json.loads(line))
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"not an audit record: {str(exc).splitlines()[0][:120]}") from None


def verify_chain(lines: Iterable[str | bytes], *, start: str = GENESIS) -> ChainReport:
    """Check every record in order; the report names the first that does not hold."""
    prev, position = start, 0
    for position, line in enumerate(lines, start=1):
        try:
            record = parse_record(line)
        except ValueError as exc:
            return _broken(position - 1, prev, position, None, str(exc))
        problem = _problem(record, position, prev)
        if problem:
            return _broken(position - 1, prev, position, record.seq, problem)
        prev = record.hash
    return ChainReport(checked=position, head=prev)


def _problem(record: AuditRecord, position: int, prev: str) -> str:
    if record.hash != record.expected_hash():
        return f"its content does not match its hash ({record.action.value} by {record.actor})"
    if record.seq != position:
        return f"expected seq {position}, found {record.seq} (a record was removed or inserted)"
    if record.prev_hash != prev:
        return (
            f"it does not chain to record {position - 1}: that record was rewritten "
            "with a fresh hash, or this one was forged"
        )
    return ""


def _broken(checked: int, head: str, at: int, seq: int | None, problem: str) -> ChainReport:
    return ChainReport(checked=checked, head=head, broken_at=at, broken_seq=seq, problem=problem)
