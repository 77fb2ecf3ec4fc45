"""A snapshot run: list the source, copy what changed into blobs, commit the keys listing."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import timedelta
from typing import Any

from workers.context import Context
from workers.core.config import MinioComponent
from workers.core.errors import EngineError, NotFoundError, UsageError
from workers.core.manifest import Manifest
from workers.core.ports import Progress, no_progress
from workers.engines.minio.blobs import Blobs, backup_bucket, is_large
from workers.engines.minio.buckets import Bucket, Lock
from workers.engines.minio.clients import new_session, source_client
from workers.engines.minio.snapshot import (
    KEYS_OBJECT,
    KIND,
    Entry,
    Listed,
    dump_entries,
    load_entries,
    plan_run,
)
from workers.storage.repository import Repository

KEYS_STORED = KEYS_OBJECT + ".zst"
LOCK_MARGIN = timedelta(days=1)
"""Object Lock outlasts the retention window a little, so prune never meets a locked blob."""


def settings_of(ctx: Context, component: str) -> MinioComponent:
    """The component's settings, which must be of kind minio."""
    settings = ctx.settings.component(component)
    if not isinstance(settings, MinioComponent):
        raise EngineError(f"component {component} is {settings.kind}, not minio")
    return settings


def blobs_of(ctx: Context, component: str, session: Any = None) -> Blobs:
    """The component's blobs in the backup store, locked as configured."""
    settings = settings_of(ctx, component)
    lock = None
    if settings.object_lock != "off":
        lock = Lock(settings.object_lock, ctx.clock() + settings.retention + LOCK_MARGIN)
    return Blobs(backup_bucket(ctx.settings.storage, settings.workers, session), component, lock)


def entries_of(repo: Repository, manifest: Manifest) -> list[Entry]:
    """Every entry a snapshot holds, read from its keys listing (sha256 checked)."""
    return load_entries(repo.open_object(manifest, KEYS_STORED))


def source_buckets(client: Any, settings: MinioComponent) -> list[Bucket]:
    """The configured buckets (each must exist), or every bucket of the source."""
    names = list(settings.buckets)
    if not names:
        with _source_errors(settings):
            names = [b["Name"] for b in client.list_buckets().get("Buckets", [])]
    buckets = [Bucket(client, name) for name in names]
    missing = [b.name for b in buckets if not b.exists_bucket()]
    if missing:
        raise UsageError(
            f"bucket {', '.join(missing)} does not exist at {settings.endpoint_url}",
            hint="check the component's buckets list",
        )
    return buckets


def _source_errors(settings: MinioComponent) -> Any:
    from workers.storage.store_s3 import storage_errors

    return storage_errors("list buckets", settings.endpoint_url)


def snapshot(ctx: Context, component: str, *, progress: Progress = no_progress) -> Manifest:
    """Take one incremental snapshot of the component's buckets and commit its manifest."""
    settings = settings_of(ctx, component)
    session = new_session()
    blobs = blobs_of(ctx, component, session)
    client = source_client(settings, session=session)
    buckets = source_buckets(client, settings)
    previous = _previous(ctx, component)
    progress("list")
    with ctx.repo.begin(component, KIND) as writer:
        blobs.start_run(writer.id)
        try:
            listing = [item for bucket in buckets for item in bucket.listing()]
            plan = plan_run(listing, previous)
            known = {entry.sha256 for entry in previous.values()}
            copier = _Copier(blobs, {b.name: b for b in buckets}, known, writer.id)
            copied = copier.copy_all(plan.to_copy, settings.workers, progress)
            entries = plan.kept + copied
            writer.write(KEYS_OBJECT, dump_entries(entries), encrypt=False)
            facts = {
                "objects": len(entries),
                "bytes": sum(e.size for e in entries),
                "changed_objects": len(copied),
                "changed_bytes": sum(e.size for e in copied),
            }
            manifest = writer.commit(
                source={"endpoint": settings.endpoint_url, "buckets": [b.name for b in buckets]},
                details={**facts, "blobs": f"{component}/blobs/", "lock": settings.object_lock},
            )
        finally:
            blobs.end_run(writer.id)
    ctx.repo.set_facts(component, **facts)
    return manifest


def _previous(ctx: Context, component: str) -> dict[tuple[str, str], Entry]:
    """The newest snapshot's entries by (bucket, key); empty for the first run.

    Keys a verify found damaged are left out, so this run copies them afresh instead of
    carrying the damage into every later snapshot.
    """
    backups = ctx.repo.index(component).backups
    if not backups:
        return {}
    newest = ctx.repo.manifest(backups[-1].id)
    verdict = newest.verdict
    damaged = verdict.checks.get("damaged", {}) if verdict and verdict.state == "failed" else {}
    return {
        entry.where: entry
        for entry in entries_of(ctx.repo, newest)
        if f"{entry.bucket}/{entry.key}" not in damaged
    }


class _Copier:
    """Copies changed objects into blobs on a thread pool, reading each body once."""

    def __init__(self, blobs: Blobs, buckets: dict[str, Bucket], known: set[str], run: str):
        self.blobs = blobs
        self.buckets = buckets
        self.known = known
        self.run = run
        self.lock = threading.Lock()

    def copy_all(self, items: list[Listed], workers: int, progress: Progress) -> list[Entry]:
        """Copy every item; an object deleted since the listing is left out."""
        total = sum(item.size for item in items)
        done = 0
        copied: list[Entry] = []
        with ThreadPoolExecutor(workers, thread_name_prefix="minio-copy") as pool:
            futures = [pool.submit(self.copy, item) for item in items]
            for count, future in enumerate(as_completed(futures), start=1):
                entry = future.result()
                if entry is not None:
                    copied.append(entry)
                    done += entry.size
                if count % 200 == 0 or count == len(futures):
                    progress("copy", done_bytes=done, total_bytes=total)
        return copied

    def copy(self, item: Listed) -> Entry | None:
        """GET the object and PUT it as a blob (multipart when large); None if it is gone."""
        source = self.buckets[item.bucket]
        try:
            if is_large(item.size):
                size, sha = self.blobs.put_large(source.read(item.key), self.known, self.run)
            else:
                data = b"".join(source.read(item.key))
                size, sha = len(data), hashlib.sha256(data).hexdigest()
                self.blobs.put_small(data, sha, known=sha in self.known)
        except NotFoundError:
            return None  # deleted since the listing: the next snapshot agrees
        with self.lock:
            self.known.add(sha)
        return Entry(
            bucket=item.bucket,
            key=item.key,
            size=size,
            etag=item.etag,
            modified=item.modified,
            sha256=sha,
        )
