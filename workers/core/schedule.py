"""Schedule policy: whether a backup or an upkeep task is due, from the catalog, never memory.

A backup is due one frequency after the start of the component's last good backup. After
downtime that instant lies in the past, so one run is due right away; once it is in flight
(or failed) nothing more is due for that slot, so missed slots are caught up once, not once
per slot.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import ConfigDict

from workers.core.catalog import good_backups, next_due
from workers.core.manifest import BackupSummary, CatalogIndex
from workers.core.model import Model

BASE_KIND_SUFFIX = "-base"
"""Manifest kinds ending with this are physical base backups (their own schedule)."""


class Due(Model):
    """A due-ness decision and why, for logs and the scheduler's history."""

    model_config = ConfigDict(frozen=True)

    due: bool
    at: datetime | None
    reason: str


def last_good(index: CatalogIndex, *, base: bool) -> BackupSummary | None:
    """The newest good backup of one track (base backups or the rest)."""
    track = [b for b in good_backups(index) if b.kind.endswith(BASE_KIND_SUFFIX) == base]
    return track[-1] if track else None


def backup_due(
    last: BackupSummary | None,
    frequency: timedelta,
    now: datetime,
    *,
    last_attempt: datetime | None = None,
    in_flight: bool = False,
    retry_after: timedelta = timedelta(hours=1),
) -> Due:
    """Whether a backup should be enqueued at ``now``.

    ``last_attempt`` is when the scheduler last enqueued this track; an attempt at or after
    the slot that left no good backup failed, so the slot waits ``retry_after`` (at most one
    frequency) before it is tried again instead of being retried every tick.
    """
    if in_flight:
        return Due(due=False, at=None, reason="a run is queued or running")
    slot = next_due(last, frequency, now) if last is not None else None
    failed_slot = last_attempt is not None and (slot is None or last_attempt >= slot)
    if failed_slot:
        assert last_attempt is not None
        retry_at = last_attempt + min(frequency, retry_after)
        if now < retry_at:
            return Due(due=False, at=retry_at, reason="waiting to retry after a failed run")
        return Due(due=True, at=retry_at, reason="retrying after a failed run")
    if slot is None:
        return Due(due=True, at=now, reason="never backed up")
    if now < slot:
        return Due(due=False, at=slot, reason="not due yet")
    missed = 1 + int((now - slot) / frequency)
    reason = f"catching up once ({missed} slots missed)" if missed > 1 else "due"
    return Due(due=True, at=slot, reason=reason)


def periodic_due(last_run: datetime | None, interval: timedelta, now: datetime) -> bool:
    """Whether an upkeep task (monitor, prune, sweep) last run at ``last_run`` is due again."""
    return last_run is None or now >= last_run + interval
