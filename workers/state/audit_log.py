"""The audit log in Redis: an append-only, hash-chained list, exported to the backup store.

Keys under the configured prefix ``P``::

    P:audit            list of records, one canonical JSON line each, oldest first
    P:audit:head       "<seq> <hash>" of the newest record (what the next one chains to)
    P:audit:exported   the highest seq already exported to the store

Appending is a compare-and-set on the head: the record is sealed here (sha256 needs no
Lua), and a script pushes it only if the head is still the one it was sealed against, so
writers on several machines never fork the chain. Exports go to ``_audit/<day>.jsonl`` in
the backup store, daily and after every restore, so a wiped Redis does not lose history.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import redis

from workers.core.audit import (
    GENESIS,
    AuditAction,
    AuditEntry,
    AuditRecord,
    ChainReport,
    parse_record,
    seal,
    verify_chain,
)
from workers.core.errors import ConflictError, StorageUnavailable
from workers.core.ports import Store

EXPORT_PREFIX = "_audit/"
MAX_ATTEMPTS = 200
_PAGE = 1000

# KEYS: list, head. ARGV: expected head ("" when the log is empty), record line, new head.
_APPEND = """
local head = redis.call('GET', KEYS[2]) or ''
if head ~= ARGV[1] then return 0 end
if head == '' and redis.call('LLEN', KEYS[1]) > 0 then return -1 end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class AuditLog:
    """Append records, read them back, check the chain, export to the store."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._append = client.register_script(_APPEND)

    def key(self, *parts: str) -> str:
        """A key under this deployment's prefix."""
        return ":".join((self.prefix, *parts))

    def append(self, entry: AuditEntry) -> AuditRecord:
        """Seal ``entry`` onto the chain and store it; returns the sealed record."""
        for _ in range(MAX_ATTEMPTS):
            head = _text(self._call(self.client.get, self.key("audit", "head")) or "")
            seq, prev = _split_head(head)
            record = seal(entry, seq=seq + 1, prev_hash=prev)
            done = self._call(
                self._append,
                keys=[self.key("audit"), self.key("audit", "head")],
                args=[head, record.line(), f"{record.seq} {record.hash}"],
            )
            if done == 1:
                return record
            if done == -1:
                raise ConflictError(
                    "the audit log has records but no head; it was tampered with or half-restored",
                    hint="run: kosmos-backup audit verify",
                )
        raise ConflictError("the audit log is too busy to append", hint="try again")

    def record(
        self,
        action: AuditAction,
        actor: str,
        *,
        at: datetime,
        subject: str | None = None,
        component: str | None = None,
        **details: Any,
    ) -> AuditRecord:
        """Append one record built from its parts."""
        entry = AuditEntry(
            at=at,
            action=action,
            actor=actor,
            subject=subject,
            component=component,
            details=json.loads(json.dumps(details, default=str)),
        )
        return self.append(entry)

    def record_deletions(self, deletions: Iterable[Any], actor: str, at: datetime) -> int:
        """One ``prune.delete`` record per deleted backup (dry runs are not recorded)."""
        count = 0
        for item in deletions:
            if getattr(item, "dry_run", False):
                continue
            self.record(
                AuditAction.PRUNE_DELETE,
                actor,
                at=at,
                subject=item.backup_id,
                component=item.component,
                kind=item.kind,
                size=item.size,
                finished_at=item.finished_at.isoformat(),
                reason=item.reason,
            )
            count += 1
        return count

    def lines(self) -> Iterator[str]:
        """Every stored line, oldest first (read in pages)."""
        start = 0
        while True:
            page = self._call(self.client.lrange, self.key("audit"), start, start + _PAGE - 1)
            for raw in page:
                yield _text(raw)
            if len(page) < _PAGE:
                return
            start += _PAGE

    def tail(self, count: int) -> list[AuditRecord]:
        """The newest ``count`` records, oldest of them first (malformed lines skipped)."""
        found = []
        for raw in self._call(self.client.lrange, self.key("audit"), -count, -1):
            try:
                found.append(parse_record(raw))
            except ValueError:
                continue
        return found

    def verify(self) -> ChainReport:
        """Check the whole chain, and that it ends where the head says it does."""
        report = verify_chain(self.lines())
        if not report.ok:
            return report
        head = _text(self._call(self.client.get, self.key("audit", "head")) or "")
        seq, last = _split_head(head)
        if (seq, last) != (report.checked, report.head):
            return report.model_copy(
                update={
                    "broken_at": report.checked + 1,
                    "problem": f"the head says the log ends at record {seq}, "
                    f"but the list ends at record {report.checked} (records were removed)",
                }
            )
        return report

    def export(self, store: Store, *, full: bool = False) -> list[str]:
        """Write each day with records newer than the last export to ``_audit/<day>.jsonl``."""
        done = 0 if full else int(self._call(self.client.get, self.key("audit", "exported")) or 0)
        by_day: dict[date, list[str]] = {}
        newest = done
        touched: set[date] = set()
        day = datetime.now(UTC).date()
        for position, line in enumerate(self.lines(), start=1):
            # A damaged line is exported as it is (beside its neighbours), never dropped.
            with contextlib.suppress(ValueError):
                day = parse_record(line).at.astimezone(UTC).date()
            by_day.setdefault(day, []).append(line)
            if position > done:
                touched.add(day)
                newest = max(newest, position)
        keys = []
        for day in sorted(touched):
            key = export_key(day)
            store.put_bytes(key, ("\n".join(by_day[day]) + "\n").encode())
            keys.append(key)
        self._call(self.client.set, self.key("audit", "exported"), newest)
        return keys

    @staticmethod
    def _call(func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except redis.exceptions.ConnectionError as exc:
            raise StorageUnavailable(
                "Redis cannot be reached, so the audit log cannot be written or read",
                hint="check redis.url",
            ) from exc


def export_key(day: date) -> str:
    """Where one day of the audit log is exported in the backup store."""
    return f"{EXPORT_PREFIX}{day.isoformat()}.jsonl"


def verify_export(store: Store) -> ChainReport:
    """Check the chain as exported to the store (every day file, records in seq order)."""
    lines: list[tuple[int, str]] = []
    for info in store.list_objects(EXPORT_PREFIX):
        for line in store.get_bytes(info.key).decode().splitlines():
            if line.strip():
                try:
                    seq = int(json.loads(line).get("seq", 0))
                except (ValueError, AttributeError):
                    seq = 0
                lines.append((seq, line))
    lines.sort(key=lambda item: item[0])
    return verify_chain(line for _, line in lines)


def _split_head(head: str) -> tuple[int, str]:
    if not head:
        return 0, GENESIS
    seq, _, digest = head.partition(" ")
    return int(seq), digest
