"""The MinIO engine as the registry calls it: backup, verify, restore, prune, its checks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workers.context import Context
from workers.core.config import Settings
from workers.core.errors import IntegrityError, KosmosError, UsageError
from workers.core.manifest import Manifest
from workers.core.ports import Progress, no_progress
from workers.core.retention import Deletion
from workers.engines.minio import mirror, retention, verification
from workers.engines.minio.clients import source_client
from workers.engines.minio.restoration import MinioRestoreOptions, MinioRestoreResult
from workers.engines.minio.restoration import restore as restore_snapshot
from workers.storage.store_s3 import storage_errors

LIVE = ("live", "in-place")
"""Targets that mean "the component's own buckets" on the generic restore command."""


def backup(
    ctx: Context, component: str, *, base: bool = False, progress: Progress = no_progress
) -> Manifest:
    """Take one incremental snapshot (there is no separate base backup for MinIO)."""
    if base:
        raise UsageError("minio has no base backups: every snapshot is complete")
    return mirror.snapshot(ctx, component, progress=progress)


def verify(
    ctx: Context,
    component: str,
    manifest: Manifest,
    *,
    deep: bool = False,
    full: bool = False,
    progress: Progress = no_progress,
) -> Manifest:
    """Shallow: every blob present with its size; deep: re-hash a sample, ``full``: all."""
    return verification.verify(ctx, component, manifest, deep=deep, full=full, progress=progress)


def restore(
    ctx: Context,
    component: str,
    ref: str = "latest",
    *,
    progress: Progress = no_progress,
    target: str | None = None,
    point: datetime | None = None,
    in_place: bool = False,
    bucket: str | None = None,
    endpoint: str | None = None,
    prune_target: bool = False,
    dry_run: bool = False,
    scratch: bool | str = False,
    **ignored: Any,
) -> MinioRestoreResult:
    """Restore a snapshot (``point``: as of that time) into ``target`` or the same buckets."""
    unknown = sorted(name for name, value in ignored.items() if value not in (None, False))
    if unknown:
        raise UsageError(f"a minio restore takes no {', '.join(unknown)}")
    options = MinioRestoreOptions(
        point=point,
        bucket=bucket,
        target=None if in_place or target in LIVE else target,
        endpoint=endpoint,
        prune_target=prune_target,
        dry_run=dry_run,
        scratch=str(scratch).lower() in ("1", "true", "yes"),
    )
    result = restore_snapshot(ctx, component, ref, options, progress=progress)
    if result.checksums_matched is False:
        raise IntegrityError(
            f"{len(result.mismatched)} restored objects differ from the snapshot: "
            + ", ".join(result.mismatched[:5]),
            hint="the backup or the restore is damaged; run a deep verify",
        )
    return result


def prune(ctx: Context, component: str, *, dry_run: bool = False) -> list[Deletion]:
    """Drop snapshots past the window (newest ``keep_last`` kept), then collect blobs."""
    return retention.prune(ctx, component, dry_run=dry_run)


def config_problems(settings: Settings, component: str) -> list[tuple[str, str]]:
    """Blobs live in object storage: a file:// store cannot hold them."""
    if settings.storage.scheme == "s3":
        return []
    return [
        (
            f"components.{component}: the minio engine needs an s3:// store, and storage.url "
            f"is {settings.storage.scheme}://",
            "set storage.url: s3://bucket/prefix (OSS, MinIO or AWS)",
        )
    ]


def unreachable(ctx: Context, component: str) -> str | None:
    """Why the source endpoint cannot be listed right now (no credentials shown), or None."""
    settings = mirror.settings_of(ctx, component)
    client = source_client(settings, probe=True)
    try:
        with storage_errors("list buckets", settings.endpoint_url):
            client.list_buckets()
    except KosmosError as exc:
        return exc.message
    return None
