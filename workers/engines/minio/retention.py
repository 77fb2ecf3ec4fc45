"""Retention of MinIO snapshots: expire old manifests, then collect unreferenced blobs."""

from __future__ import annotations

from pydantic import ConfigDict

from workers.context import Context
from workers.core.model import Model
from workers.core.retention import Deletion
from workers.engines.minio.mirror import blobs_of, entries_of, settings_of
from workers.engines.minio.snapshot import collectable
from workers.storage.expiry import expire_backups


class Collected(Model):
    """What one garbage collection removed (or, dry, would remove)."""

    model_config = ConfigDict(frozen=True)

    blobs: int
    bytes: int
    staging: int


def prune(ctx: Context, component: str, *, dry_run: bool = False) -> list[Deletion]:
    """Drop snapshots past the window (the newest ``keep_last`` kept), then collect blobs."""
    settings = settings_of(ctx, component)
    deleted = expire_backups(
        ctx.repo,
        component,
        now=ctx.clock(),
        retention=settings.retention,
        keep_last=settings.keep_last,
        dry_run=dry_run,
    )
    collect(ctx, component, dry_run=dry_run)
    return deleted


def collect(ctx: Context, component: str, *, dry_run: bool = False) -> Collected:
    """Delete blobs no snapshot references, older than the grace period, none running.

    The references are read after the listing of blobs: a snapshot committed in between
    only adds references, so a blob it needs is never taken for garbage.
    """
    settings = settings_of(ctx, component)
    blobs = blobs_of(ctx, component)
    now = ctx.clock()
    runs = blobs.runs()
    stored = blobs.stored()
    referenced = _referenced(ctx, component)
    doomed = collectable(
        {sha: at for sha, (_, at) in stored.items()},
        referenced,
        now=now,
        grace=settings.gc_grace,
        running=list(runs.values()),
    )
    staging = [key for key, at in blobs.staged().items() if now - at > settings.gc_grace]
    stale_runs = [rid for rid, at in runs.items() if now - at > settings.gc_grace]
    if not dry_run:
        blobs.delete(doomed)
        blobs.bucket.delete(staging)
        for run in stale_runs:
            blobs.end_run(run)
    return Collected(
        blobs=len(doomed), bytes=sum(stored[sha][0] for sha in doomed), staging=len(staging)
    )


def _referenced(ctx: Context, component: str) -> set[str]:
    """Every blob a committed snapshot of the component references."""
    found: set[str] = set()
    for summary in ctx.repo.index(component).backups:
        manifest = ctx.repo.manifest(summary.id)
        found.update(entry.sha256 for entry in entries_of(ctx.repo, manifest))
    return found
