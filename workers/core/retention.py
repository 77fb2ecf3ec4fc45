"""Retention policy: which backups to delete, given the window and the newest to keep."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import ConfigDict

from workers.core.durations import format_duration
from workers.core.manifest import BackupSummary, VerificationState
from workers.core.model import Model


class Deletion(Model):
    """One backup that prune removed (or would remove, in a dry run), for the audit log."""

    model_config = ConfigDict(frozen=True)

    component: str
    backup_id: str
    kind: str
    finished_at: datetime
    size: int
    reason: str
    dry_run: bool = False


def is_good(backup: BackupSummary) -> bool:
    """Committed and not failed verification: a backup a restore may rely on."""
    return backup.verification is None or backup.verification.state != VerificationState.FAILED


def protected(backups: Sequence[BackupSummary], keep_last: int) -> set[str]:
    """Ids of the newest ``keep_last`` good backups: never deleted, however old."""
    good = sorted((b for b in backups if is_good(b)), key=lambda b: (b.finished_at, b.id))
    return {b.id for b in good[-keep_last:]} if keep_last > 0 else set()


def expired(
    backups: Sequence[BackupSummary], now: datetime, retention: timedelta, keep_last: int
) -> list[BackupSummary]:
    """Backups that finished longer than ``retention`` before ``now`` and are not protected.

    Oldest first. A backup from the future (clock skew) is never expired.
    """
    keep = protected(backups, keep_last)
    cutoff = now - retention
    doomed = [b for b in backups if b.finished_at < cutoff and b.id not in keep]
    return sorted(doomed, key=lambda b: (b.finished_at, b.id))


def deletion(backup: BackupSummary, retention: timedelta, *, dry_run: bool) -> Deletion:
    """The record of deleting one expired backup."""
    return Deletion(
        component=backup.component,
        backup_id=backup.id,
        kind=backup.kind,
        finished_at=backup.finished_at,
        size=backup.size,
        reason=f"older than the {format_duration(retention)} retention",
        dry_run=dry_run,
    )
