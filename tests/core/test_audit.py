"""The audit hash chain: sealing, canonical form, and naming the first broken record."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.core.audit import (
    GENESIS,
    AuditAction,
    AuditEntry,
    AuditRecord,
    ChainReport,
    chain_hash,
    parse_record,
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


def test_an_intact_chain_says_how_many_and_its_head_in_one_line() -> None:
    records = chain(3)
    report = verify_chain(r.line() for r in records)
    assert report == ChainReport(checked=3, head=records[-1].hash)
    assert report.describe() == f"audit chain intact: 3 records, head {records[-1].hash[:12]}"
    empty = verify_chain([])
    assert (empty.ok, empty.checked, empty.head) == (True, 0, GENESIS)
    assert empty.describe() == f"audit chain intact: 0 records, head {GENESIS[:12]}"


def test_a_changed_record_is_described_word_for_word() -> None:
    records = chain(4)
    lines = [r.line() for r in records]
    doc = json.loads(lines[2])
    doc["actor"] = "UMALLORY"
    lines[2] = json.dumps(doc)
    report = verify_chain(lines)
    problem = "its content does not match its hash (restore.request by UMALLORY)"
    assert report == ChainReport(
        checked=2, head=records[1].hash, broken_at=3, broken_seq=3, problem=problem
    )
    assert report.describe() == f"audit chain broken at record 3 (seq 3): {problem}"


def test_a_removed_record_is_described_word_for_word() -> None:
    records = chain(4)
    lines = [r.line() for r in records]
    report = verify_chain(lines[:1] + lines[2:])
    problem = "expected seq 2, found 3 (a record was removed or inserted)"
    assert report == ChainReport(
        checked=1, head=records[0].hash, broken_at=2, broken_seq=3, problem=problem
    )
    assert report.describe() == f"audit chain broken at record 2 (seq 3): {problem}"


def test_a_rehashed_record_is_described_word_for_word() -> None:
    records = chain(3)
    forged = records[1].model_copy(update={"actor": "UMALLORY"})
    forged = forged.model_copy(update={"hash": forged.expected_hash()})
    report = verify_chain([records[0].line(), forged.line(), records[2].line()])
    problem = (
        "it does not chain to record 2: that record was rewritten with a fresh hash, "
        "or this one was forged"
    )
    assert report == ChainReport(
        checked=2, head=forged.hash, broken_at=3, broken_seq=3, problem=problem
    )


def test_a_line_that_is_not_a_record_has_no_seq() -> None:
    records = chain(2)
    report = verify_chain([records[0].line(), "not json", records[1].line()])
    problem = "not an audit record: Expecting value: line 1 column 1 (char 0)"
    assert report == ChainReport(
        checked=1, head=records[0].hash, broken_at=2, broken_seq=None, problem=problem
    )
    assert report.describe() == f"audit chain broken at record 2: {problem}"


def test_a_record_that_is_not_valid_is_refused_with_its_first_line_cut_short() -> None:
    doc = json.loads(chain(1)[0].line())
    doc["seq"] = 0
    with pytest.raises(ValueError) as caught:
        parse_record(json.dumps(doc))
    assert str(caught.value) == "not an audit record: 1 validation error for AuditRecord"
    with pytest.raises(ValueError) as caught:
        parse_record("1" * 5000)  # Python's own error is 140 characters long
    assert str(caught.value) == (
        "not an audit record: Exceeds the limit (4300 digits) for integer string conversion: "
        "value has 5000 digits; use sys.set_int_max_str_digits() t"
    )
    assert parse_record(chain(1)[0].line().encode()) == chain(1)[0]


def test_a_chain_checked_from_a_later_head_starts_there() -> None:
    records = chain(3)
    lines = [r.line() for r in records]
    report = verify_chain(lines, start="f" * 64)
    assert (report.broken_at, report.checked, report.head) == (1, 0, "f" * 64)
    assert report.problem.startswith("it does not chain to record 0")
    assert verify_chain(lines[:1], start=GENESIS).ok


def test_a_sealed_record_keeps_the_entry_seq_and_link() -> None:
    entry = AuditEntry(at=T0, action=AuditAction.PRUNE_DELETE, actor="worker", details={"n": 1})
    record = seal(entry, seq=7, prev_hash="a" * 64)
    assert (record.seq, record.prev_hash, record.action, record.actor) == (
        7,
        "a" * 64,
        AuditAction.PRUNE_DELETE,
        "worker",
    )
    assert record.hash == chain_hash("a" * 64, record.canonical()) != GENESIS
    assert record.canonical() == record.line().replace(f',"hash":"{record.hash}"', "").encode()
