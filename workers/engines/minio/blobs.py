"""The content-addressed blobs of a MinIO component in the backup store."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from workers.core.config import StorageSettings
from workers.core.errors import ConfigError
from workers.engines.minio.buckets import PART, Bucket, Lock
from workers.engines.minio.clients import store_client
from workers.engines.minio.snapshot import BLOBS, RUNS, blob_key, run_key

STAGING = "staging"


def backup_bucket(storage: StorageSettings, workers: int, session: Any = None) -> Bucket:
    """The backup store as a Bucket; the engine needs an S3-compatible store."""
    if storage.scheme != "s3":
        raise ConfigError(
            "the minio engine needs an s3:// backup store",
            hint="set storage.url to an S3-compatible bucket (OSS, MinIO, AWS)",
        )
    return Bucket(store_client(storage, workers, session), storage.bucket, storage.prefix)


class Blobs:
    """Blobs under ``<component>/blobs/<sha256>``, written once and never overwritten."""

    def __init__(self, bucket: Bucket, component: str, lock: Lock | None = None) -> None:
        self.bucket = bucket
        self.component = component
        self.lock = lock

    def key(self, sha256: str) -> str:
        """The blob's key in the backup bucket."""
        return blob_key(self.component, sha256)

    def stored(self) -> dict[str, tuple[int, datetime]]:
        """Every blob: sha256 -> (size, last modified), from ListObjectsV2 pages."""
        prefix = f"{self.component}/{BLOBS}/"
        return {
            item.key[len(prefix) :]: (item.size, item.modified)
            for item in self.bucket.listing(prefix)
        }

    def put_small(self, data: bytes, sha256: str, *, known: bool) -> None:
        """Store a small body as its blob unless it is known or (on WORM) present."""
        if not known and not self._present(sha256):
            self.bucket.put(self.key(sha256), data, self.lock)

    def put_large(self, chunks: Iterator[bytes], known: set[str], run: str) -> tuple[int, str]:
        """Stream a large body into a staging object, then copy it to its blob; (size, sha)."""
        staging = f"{self.component}/{STAGING}/{run}/{uuid.uuid4().hex}"
        size, sha = self.bucket.upload_parts(staging, chunks)
        try:
            if sha not in known and not self._present(sha):
                self.bucket.copy_within(staging, self.key(sha), self.lock)
        finally:
            self.bucket.delete([staging])
        return size, sha

    def _present(self, sha: str) -> bool:
        # Without Object Lock a re-put of the same content is harmless and refreshes the
        # blob's age, which GC's grace period counts on; on a WORM bucket nothing is ever
        # written twice.
        return self.lock is not None and self.bucket.exists(self.key(sha))

    def read(self, sha256: str) -> Iterator[bytes]:
        """The blob's body."""
        return self.bucket.read(self.key(sha256))

    def rehash(self, sha256: str) -> tuple[int, str]:
        """Read a blob end to end: (size, sha256 of what is stored)."""
        digest = hashlib.sha256()
        size = 0
        for chunk in self.read(sha256):
            digest.update(chunk)
            size += len(chunk)
        return size, digest.hexdigest()

    def delete(self, shas: list[str]) -> None:
        """Delete blobs (GC only)."""
        self.bucket.delete([self.key(sha) for sha in shas])

    def start_run(self, backup_id: str) -> None:
        """Leave the marker that keeps GC away while this snapshot runs."""
        self.bucket.put(run_key(self.component, backup_id), b"")

    def end_run(self, backup_id: str) -> None:
        """Remove the run marker (the snapshot committed or failed)."""
        self.bucket.delete([run_key(self.component, backup_id)])

    def runs(self) -> dict[str, datetime]:
        """Snapshot runs that left a marker: backup id -> when it started."""
        prefix = f"{self.component}/{RUNS}/"
        return {item.key[len(prefix) :]: item.modified for item in self.bucket.listing(prefix)}

    def staged(self) -> dict[str, datetime]:
        """Staging objects of large copies (left behind only by killed runs)."""
        prefix = f"{self.component}/{STAGING}/"
        return {item.key: item.modified for item in self.bucket.listing(prefix)}


def is_large(size: int) -> bool:
    """Whether an object goes through a multipart upload instead of one read."""
    return size > PART
