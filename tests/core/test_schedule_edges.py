"""A backup slot at its edges: a second before and at the slot, slots missed, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workers.core.manifest import BackupSummary, CatalogIndex
from workers.core.schedule import Due, backup_due, last_good, periodic_due

HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)
STARTED = datetime(2026, 11, 24, 11, 0, tzinfo=UTC)
LAST = BackupSummary(
    id="postgres-20261124T1100Z-cd34",
    component="postgres",
    kind="postgres-logical",
    started_at=STARTED,
    finished_at=STARTED + timedelta(minutes=2),
    size=100,
    objects=2,
)


def test_the_slot_is_due_at_its_second_and_a_missed_one_is_caught_up_once() -> None:
    slot = backup_due(LAST, HOUR, STARTED).at
    assert slot is not None and slot > STARTED
    assert backup_due(LAST, HOUR, slot - SECOND) == Due(due=False, at=slot, reason="not due yet")
    assert backup_due(LAST, HOUR, slot) == Due(due=True, at=slot, reason="due")
    assert backup_due(LAST, HOUR, slot + HOUR - SECOND) == Due(due=True, at=slot, reason="due")
    assert backup_due(LAST, HOUR, slot + HOUR) == Due(
        due=True, at=slot, reason="catching up once (2 slots missed)"
    )
    assert backup_due(None, HOUR, slot) == Due(due=True, at=slot, reason="never backed up")


def test_a_failed_slot_waits_the_shorter_of_retry_after_and_the_frequency() -> None:
    slot = backup_due(LAST, HOUR, STARTED).at
    assert slot is not None
    tried = slot + timedelta(minutes=1)
    waits = timedelta(minutes=20)
    retry_at = tried + waits
    assert backup_due(LAST, HOUR, retry_at - SECOND, last_attempt=tried, retry_after=waits) == Due(
        due=False, at=retry_at, reason="waiting to retry after a failed run"
    )
    assert backup_due(LAST, HOUR, retry_at, last_attempt=tried, retry_after=waits) == Due(
        due=True, at=retry_at, reason="retrying after a failed run"
    )
    capped = backup_due(LAST, HOUR, tried, last_attempt=tried, retry_after=3 * HOUR)
    assert capped.at == tried + HOUR
    # An attempt before the slot was for the previous one: the slot itself is simply due.
    early = backup_due(LAST, HOUR, slot, last_attempt=slot - SECOND)
    assert early == Due(due=True, at=slot, reason="due")
    never = backup_due(None, HOUR, tried + SECOND, last_attempt=tried, retry_after=waits)
    assert never == Due(due=False, at=tried + waits, reason="waiting to retry after a failed run")
    busy = backup_due(LAST, HOUR, slot, in_flight=True)
    assert busy == Due(due=False, at=None, reason="a run is queued or running")


def test_upkeep_is_due_at_its_interval() -> None:
    assert periodic_due(None, HOUR, STARTED)
    assert not periodic_due(STARTED, HOUR, STARTED + HOUR - SECOND)
    assert periodic_due(STARTED, HOUR, STARTED + HOUR)


def test_an_attempt_made_at_the_slot_itself_was_for_that_slot() -> None:
    slot = STARTED + HOUR
    assert backup_due(LAST, HOUR, slot + SECOND, last_attempt=slot) == Due(
        due=False, at=slot + HOUR, reason="waiting to retry after a failed run"
    )


def test_a_track_without_a_good_backup_has_no_last_one() -> None:
    empty = CatalogIndex(component="postgres")
    assert last_good(empty, base=False) is None and last_good(empty, base=True) is None
    only_logical = CatalogIndex(component="postgres")
    only_logical.upsert(LAST)
    assert last_good(only_logical, base=False) == LAST
    assert last_good(only_logical, base=True) is None
