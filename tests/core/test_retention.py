"""Retention policy: the window, the newest keep_last good backups, failed verifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from workers.core.manifest import BackupSummary, VerificationRecord, VerificationState
from workers.core.retention import deletion, expired, is_good, protected

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def summary(age: timedelta, tag: int, failed: bool = False) -> BackupSummary:
    finished = NOW - age
    record = (
        VerificationRecord(state=VerificationState.FAILED, at=finished, detail="bad")
        if failed
        else None
    )
    return BackupSummary(
        id=f"postgres-{finished:%Y%m%dT%H%MZ}-{tag:04x}",
        component="postgres",
        kind="postgres-logical",
        started_at=finished - timedelta(minutes=1),
        finished_at=finished,
        size=100 + tag,
        objects=2,
        verification=record,
    )


backups_strategy = st.lists(
    st.tuples(st.integers(min_value=-2 * 3600, max_value=90 * 86400), st.booleans()),
    max_size=25,
).map(
    lambda items: [
        summary(timedelta(seconds=age), tag, failed) for tag, (age, failed) in enumerate(items)
    ]
)


def test_daily_dumps_older_than_thirty_days_go() -> None:
    backups = [summary(timedelta(hours=h), h) for h in range(0, 24 * 40, 24)]
    doomed = expired(backups, NOW, 30 * DAY, keep_last=3)
    assert [b.id for b in doomed] == [
        b.id for b in reversed(backups) if NOW - b.finished_at > 30 * DAY
    ]
    assert len(doomed) == 9
    assert doomed[0].finished_at < doomed[-1].finished_at


def test_newest_three_stay_even_when_all_are_past_retention() -> None:
    backups = [summary(timedelta(days=100 + d), d) for d in range(6)]
    kept = {b.id for b in backups} - {b.id for b in expired(backups, NOW, 30 * DAY, 3)}
    assert kept == {b.id for b in backups[:3]}


def test_failed_backups_do_not_count_as_kept_ones() -> None:
    newest_failed = summary(timedelta(days=40), 0, failed=True)
    older_good = [summary(timedelta(days=41 + d), d + 1) for d in range(4)]
    doomed = {b.id for b in expired([newest_failed, *older_good], NOW, 30 * DAY, 3)}
    assert newest_failed.id in doomed
    assert doomed == {newest_failed.id, older_good[-1].id}


def test_deletion_record_names_the_window() -> None:
    record = deletion(summary(40 * DAY, 1), 30 * DAY, dry_run=True)
    assert record.reason == "older than the 30d retention"
    assert record.dry_run and record.kind == "postgres-logical" and record.size == 101


@given(backups_strategy, st.integers(min_value=1, max_value=5), st.integers(1, 60))
def test_policy_properties(backups: list[BackupSummary], keep_last: int, days: int) -> None:
    retention = days * DAY
    doomed = expired(backups, NOW, retention, keep_last)
    doomed_ids = {b.id for b in doomed}
    good = sorted((b for b in backups if is_good(b)), key=lambda b: (b.finished_at, b.id))
    # the newest keep_last good ones are never deleted
    assert not doomed_ids & {b.id for b in good[-keep_last:]}
    assert protected(backups, keep_last) == {b.id for b in good[-keep_last:]}
    # only backups past the window go, and every unprotected one past it goes
    for item in backups:
        past = item.finished_at < NOW - retention
        assert (item.id in doomed_ids) == (
            past and item.id not in {b.id for b in good[-keep_last:]}
        )
    # at least min(keep_last, good) good backups survive; prune is idempotent
    survivors = [b for b in backups if b.id not in doomed_ids]
    assert sum(1 for b in survivors if is_good(b)) >= min(keep_last, len(good))
    assert expired(survivors, NOW, retention, keep_last) == []


def test_exactly_keep_last_backups_all_past_the_window_all_stay() -> None:
    backups = [summary(40 * DAY + i * DAY, i) for i in range(3)]
    assert expired(backups, NOW, 30 * DAY, keep_last=3) == []
    assert expired(backups, NOW, 30 * DAY, keep_last=2) == [backups[2]]  # the oldest goes


def test_the_window_edge_keeps_a_backup_finished_exactly_retention_ago() -> None:
    second = timedelta(seconds=1)
    on_edge, past_edge, inside = (
        summary(30 * DAY, 1),
        summary(30 * DAY + second, 2),
        summary(30 * DAY - second, 3),
    )
    doomed = expired([on_edge, past_edge, inside], NOW, 30 * DAY, keep_last=0)
    assert doomed == [past_edge]
