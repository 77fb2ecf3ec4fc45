"""The audit hash chain: sealing, canonical form, and naming the first broken record."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from workers.core.audit import (
    GENESIS,
    AuditAction,
    AuditEntry,
    AuditRecord,
    chain_hash,
    seal,
    verify_chain,
)

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def chain(count: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    prev = GENESIS
    for n in range(count):
        entry = AuditEntry(
            at=T0 + timedelta(seconds=n),
            action=AuditAction.APPROVE if n % 2 else AuditAction.REQUEST,
            actor=f"U{n}",
            subject=f"rr-{n}",
            component="postgres",
            details={"n": n, "reason": "drill ü"},
        )
        record = seal(entry, seq=n + 1, prev_hash=prev)
        records.append(record)
        prev = record.hash
    return records


def test_hash_is_sha256_of_prev_hash_and_canonical_record() -> None:
    first = chain(1)[0]
    body = {k: v for k, v in json.loads(first.line()).items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert first.hash == hashlib.sha256(GENESIS.encode() + canonical.encode()).hexdigest()
    assert first.hash == chain_hash(first.prev_hash, first.canonical())
    assert first.prev_hash == GENESIS


def test_intact_chain_verifies() -> None:
    records = chain(12)
    report = verify_chain(r.line() for r in records)
    assert report.ok and report.checked == 12 and report.head == records[-1].hash
    assert "intact: 12 records" in report.describe()
    assert verify_chain([]).ok


def test_changed_record_is_named() -> None:
    lines = [r.line() for r in chain(10)]
    doc = json.loads(lines[6])
    doc["actor"] = "UMALLORY"
    lines[6] = json.dumps(doc)
    report = verify_chain(lines)
    assert not report.ok
    assert report.broken_at == 7 and report.broken_seq == 7 and report.checked == 6
    assert "record 7" in report.describe() and "UMALLORY" in report.describe()


def test_rehashed_record_is_caught_at_the_next_link() -> None:
    records = chain(5)
    forged = records[2].model_copy(update={"actor": "UMALLORY"})
    forged = forged.model_copy(update={"hash": forged.expected_hash()})
    lines = [r.line() for r in records]
    lines[2] = forged.line()
    report = verify_chain(lines)
    assert report.broken_at == 4 and "does not chain to record 3" in report.problem


def test_removed_inserted_and_garbage_records_are_named() -> None:
    lines = [r.line() for r in chain(6)]
    assert verify_chain(lines[:2] + lines[3:]).broken_at == 3
    assert verify_chain([*lines[:4], "not json", *lines[4:]]).broken_at == 5
    assert verify_chain([lines[1], lines[0]]).broken_at == 1


@given(st.integers(min_value=0, max_value=7), st.text(min_size=1, max_size=20))
def test_any_single_change_to_details_is_detected(index: int, value: str) -> None:
    lines = [r.line() for r in chain(8)]
    doc = json.loads(lines[index])
    if doc["details"].get("reason") == value:
        value += "!"
    doc["details"]["reason"] = value
    lines[index] = json.dumps(doc)
    assert verify_chain(lines).broken_at == index + 1
