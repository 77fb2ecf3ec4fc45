"""Restore a snapshot, as of a time, into the same buckets, a new one or another endpoint."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from pydantic import ConfigDict, Field, computed_field

from workers.context import Context
from workers.core.catalog import find_backup, missing_backup
from workers.core.errors import IntegrityError, NotFoundError, UsageError
from workers.core.manifest import Manifest
from workers.core.model import Model
from workers.core.ports import Progress, no_progress
from workers.engines.minio.blobs import Blobs, is_large
from workers.engines.minio.buckets import Bucket
from workers.engines.minio.clients import new_session, source_client
from workers.engines.minio.mirror import blobs_of, entries_of, settings_of
from workers.engines.minio.options import MinioRestoreOptions
from workers.engines.minio.snapshot import Entry, RestoreCounts, as_of, plan_restore
from workers.storage.store_s3 import storage_errors

LIVE = ("live", "in-place")
"""Targets that name the component's own buckets."""


class MinioRestoreResult(Model):
    """What a restore did (or, dry, would do), per target bucket and in total."""

    model_config = ConfigDict(frozen=True)

    backup_id: str
    endpoint: str
    dry_run: bool
    buckets: dict[str, dict[str, int]]
    total: dict[str, int]
    compared: int | None = Field(default=None, description="objects read back (drills)")
    mismatched: list[str] = Field(default_factory=list, description="target/key that differ")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> str:
        """One line for the approval card: what the restore writes (or, dry, would write)."""
        total, into = self.total, ", ".join(sorted(self.buckets)) or "no bucket"
        verb = "would restore" if self.dry_run else "restored"
        return (
            f"{verb} {total.get('create', 0)} new, {total.get('overwrite', 0)} overwritten, "
            f"{total.get('unchanged', 0)} unchanged objects ({total.get('bytes', 0)} bytes) "
            f"into {into}"
        )

    @property
    def checksums_matched(self) -> bool | None:
        """Whether what was read back matches the snapshot (None when nothing was compared)."""
        return None if self.compared is None else not self.mismatched


def choose(ctx: Context, component: str, ref: str, point: datetime | None) -> Manifest:
    """The snapshot to restore: as of ``point`` when given, else ``ref``."""
    index = ctx.repo.index(component)
    if point is not None:
        return ctx.repo.manifest(as_of(index.backups, point).id)
    found = find_backup(index, ref)
    if found is None:
        raise NotFoundError(missing_backup(component, ref), see=("list", component))
    return ctx.repo.manifest(found.id)


def restore(
    ctx: Context,
    component: str,
    ref: str = "latest",
    options: MinioRestoreOptions | None = None,
    *,
    progress: Progress = no_progress,
) -> MinioRestoreResult:
    """Restore (or with ``dry_run`` count) a snapshot into its target buckets.

    A drill (``scratch``) reads every object back; one that differs fails the restore.
    """
    options = options or MinioRestoreOptions()
    if options.in_place or options.target in LIVE:
        options = options.model_copy(update={"target": None})
    settings = settings_of(ctx, component)
    manifest = choose(ctx, component, ref, options.point)
    groups = _targets(entries_of(ctx.repo, manifest), options, manifest.id)
    session = new_session()
    client = source_client(settings, options.endpoint, session=session)
    blobs = blobs_of(ctx, component, session)
    counts = {
        target: _into(Bucket(client, target), blobs, entries, options, settings.workers, progress)
        for target, entries in groups.items()
    }
    compared, mismatched = None, []
    if options.scratch and not options.dry_run:
        compared = sum(len(entries) for entries in groups.values())
        for target, entries in groups.items():
            mismatched += compare(Bucket(client, target), entries, settings.workers)
    total = RestoreCounts()
    for figures in counts.values():
        for name, value in figures.items():
            setattr(total, name, getattr(total, name) + value)
    result = MinioRestoreResult(
        backup_id=manifest.id,
        endpoint=options.endpoint or settings.endpoint_url,
        dry_run=options.dry_run,
        buckets=counts,
        total=total.as_dict(),
        compared=compared,
        mismatched=mismatched,
    )
    if mismatched:
        raise IntegrityError(
            f"{len(mismatched)} restored objects differ from the snapshot: "
            + ", ".join(mismatched[:5]),
            hint="the backup or the restore is damaged; run a deep verify",
        )
    return result


def _into(
    bucket: Bucket,
    blobs: Blobs,
    entries: list[Entry],
    options: MinioRestoreOptions,
    workers: int,
    progress: Progress,
) -> dict[str, int]:
    """Count, then (unless dry) write one target bucket, creating it when it is new."""
    exists = bucket.exists_bucket()
    present = {i.key: (i.size, i.etag) for i in bucket.listing()} if exists else {}
    plan = plan_restore(entries, present, prune=options.prune_target)
    if options.dry_run:
        return plan.counts.as_dict()
    if not exists:
        with storage_errors("create bucket", bucket.name):
            bucket.client.create_bucket(Bucket=bucket.name)
    progress(f"restore {bucket.name}", total_bytes=plan.counts.bytes)
    _write_all(blobs, bucket, plan.writes, workers)
    bucket.delete(plan.deletes)
    return plan.counts.as_dict()


def _targets(
    entries: list[Entry], options: MinioRestoreOptions, backup_id: str
) -> dict[str, list[Entry]]:
    """Entries grouped by target bucket; UsageError for a bucket the snapshot lacks."""
    by_bucket: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        by_bucket[entry.bucket].append(entry)
    if options.bucket is not None:
        if options.bucket not in by_bucket:
            held = ", ".join(sorted(by_bucket)) or "none"
            raise UsageError(
                f"the snapshot holds no bucket {options.bucket!r}", hint=f"it holds: {held}"
            )
        by_bucket = {options.bucket: by_bucket[options.bucket]}
    if options.target is not None:
        if len(by_bucket) > 1:
            raise UsageError(
                f"--target names one bucket but the snapshot holds {len(by_bucket)}",
                hint="choose the source bucket with --bucket",
            )
        return {options.target: next(iter(by_bucket.values()), [])}
    if options.scratch:
        suffix = backup_id.split("-", 1)[1].lower()  # the id's time and random part
        return {f"{name[:36]}-drill-{suffix}": found for name, found in by_bucket.items()}
    return dict(by_bucket)


def compare(bucket: Bucket, entries: list[Entry], workers: int) -> list[str]:
    """Read every restored object back; the ``bucket/key`` of those whose sha256 differs."""

    def differs(entry: Entry) -> bool:
        digest = hashlib.sha256()
        try:
            for chunk in bucket.read(entry.key):
                digest.update(chunk)
        except NotFoundError:
            return True
        return digest.hexdigest() != entry.sha256

    with ThreadPoolExecutor(workers, thread_name_prefix="minio-compare") as pool:
        flags = list(pool.map(differs, entries))
    return [f"{bucket.name}/{e.key}" for e, bad in zip(entries, flags, strict=True) if bad]


def _write_all(blobs: Blobs, bucket: Bucket, entries: list[Entry], workers: int) -> None:
    """Write every entry's blob to its key, each checked against its sha256 first."""
    with ThreadPoolExecutor(workers, thread_name_prefix="minio-restore") as pool:
        for future in [pool.submit(_write, blobs, bucket, entry) for entry in entries]:
            future.result()


def _write(blobs: Blobs, bucket: Bucket, entry: Entry) -> None:
    if is_large(entry.size):
        bucket.upload_parts(entry.key, blobs.read(entry.sha256), expect=entry.sha256)
        return
    data = b"".join(blobs.read(entry.sha256))
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise IntegrityError(
            f"the blob of {entry.bucket}/{entry.key} is damaged (sha256 mismatch)",
            hint="run a deep verify; restore from an older snapshot",
        )
    bucket.put(entry.key, data)
