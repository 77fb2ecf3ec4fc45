"""Due-ness from the catalog: regular slots, catch-up once, failed slots, base backups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workers.core.manifest import BackupSummary, CatalogIndex, VerificationRecord
from workers.core.schedule import backup_due, last_good, periodic_due

NOW = datetime(2026, 11, 24, 12, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)


def summary(
    started: datetime, kind: str = "postgres-logical", failed: bool = False
) -> BackupSummary:
    verification = (
        VerificationRecord(state="failed", at=started + timedelta(minutes=5)) if failed else None
    )
    return BackupSummary(
        id=f"postgres-{started:%Y%m%dT%H%M}Z-{'ab12' if 'base' in kind else 'cd34'}",
        component="postgres",
        kind=kind,
        started_at=started,
        finished_at=started + timedelta(minutes=2),
        size=100,
        objects=2,
        verification=verification,
    )


def test_never_backed_up_is_due_now() -> None:
    due = backup_due(None, HOUR, NOW)
    assert due.due and due.reason == "never backed up"


def test_not_due_within_the_frequency() -> None:
    last = summary(NOW - timedelta(minutes=40))
    due = backup_due(last, HOUR, NOW)
    assert not due.due
    assert due.at == last.started_at + HOUR


def test_due_exactly_one_frequency_after_the_last_start() -> None:
    last = summary(NOW - HOUR)
    assert backup_due(last, HOUR, NOW).due


def test_three_missed_slots_are_caught_up_once() -> None:
    last = summary(NOW - timedelta(hours=3, minutes=30))
    first = backup_due(last, HOUR, NOW)
    assert first.due
    assert "3 slots missed" in first.reason
    # Enqueued at NOW: while it is in flight, and after it failed, nothing more is due now.
    assert not backup_due(last, HOUR, NOW + timedelta(seconds=10), in_flight=True).due
    after = backup_due(last, HOUR, NOW + timedelta(minutes=5), last_attempt=NOW)
    assert not after.due
    assert after.reason.startswith("waiting to retry")


def test_failed_slot_is_retried_after_retry_after_not_every_tick() -> None:
    last = summary(NOW - timedelta(hours=2))
    waiting = backup_due(
        last, HOUR, NOW + timedelta(minutes=10), last_attempt=NOW, retry_after=timedelta(minutes=15)
    )
    assert not waiting.due
    assert waiting.at == NOW + timedelta(minutes=15)
    retry = backup_due(
        last, HOUR, NOW + timedelta(minutes=15), last_attempt=NOW, retry_after=timedelta(minutes=15)
    )
    assert retry.due and retry.reason == "retrying after a failed run"


def test_retry_never_waits_longer_than_one_frequency() -> None:
    due = backup_due(
        None,
        timedelta(minutes=10),
        NOW + timedelta(minutes=10),
        last_attempt=NOW,
        retry_after=timedelta(hours=6),
    )
    assert due.due


def test_attempt_before_the_slot_does_not_delay_it() -> None:
    last = summary(NOW - timedelta(hours=2))
    due = backup_due(last, HOUR, NOW, last_attempt=last.started_at - timedelta(seconds=3))
    assert due.due


def test_last_good_ignores_failed_verification_and_splits_tracks() -> None:
    index = CatalogIndex(component="postgres")
    index.upsert(summary(NOW - timedelta(hours=5)))
    index.upsert(summary(NOW - timedelta(hours=3), kind="postgres-base"))
    index.upsert(summary(NOW - timedelta(hours=1), failed=True))
    logical = last_good(index, base=False)
    base = last_good(index, base=True)
    assert logical is not None and logical.started_at == NOW - timedelta(hours=5)
    assert base is not None and base.kind == "postgres-base"


def test_periodic_due() -> None:
    assert periodic_due(None, timedelta(minutes=1), NOW)
    assert not periodic_due(NOW - timedelta(seconds=30), timedelta(minutes=1), NOW)
    assert periodic_due(NOW - timedelta(minutes=1), timedelta(minutes=1), NOW)
