"""Deleting backups past their retention from the repository (the policy is core.retention)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from workers.core.errors import NotFoundError
from workers.core.retention import Deletion, deletion, expired
from workers.storage.repository import Repository


def expire_backups(
    repo: Repository,
    component: str,
    *,
    now: datetime,
    retention: timedelta,
    keep_last: int,
    kinds: Collection[str] | None = None,
    dry_run: bool = False,
) -> list[Deletion]:
    """Delete (or, dry, just list) the component's expired backups of the given kinds."""
    backups = [b for b in repo.index(component).backups if kinds is None or b.kind in kinds]
    done = []
    for summary in expired(backups, now, retention, keep_last):
        if not dry_run:
            try:
                repo.delete(repo.manifest(summary.id))
            except NotFoundError:
                continue  # already gone (a concurrent prune); the index heals on rebuild
        done.append(deletion(summary, retention, dry_run=dry_run))
    return done
