"""S3 buckets as the MinIO engine reads and writes them: the source, a restore target, blobs."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import mmap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workers.core.errors import IntegrityError, NotFoundError, StorageError
from workers.engines.minio.snapshot import Listed
from workers.storage.store_s3 import storage_errors

PART = 8 << 20
"""Objects up to this size are read whole; larger ones stream through multipart parts."""
CHUNK = 64 << 10
"""Read size: below malloc's mmap threshold, so reads never raise it (see _parts)."""
UPLOADS_AT_ONCE = 2
"""Multipart uploads one Bucket runs at the same time."""


@dataclass(frozen=True)
class Lock:
    """S3 Object Lock to put on written objects: a mode and a retain-until date."""

    mode: str
    until: datetime

    def params(self) -> dict[str, Any]:
        """The PutObject / CreateMultipartUpload parameters."""
        return {"ObjectLockMode": self.mode.upper(), "ObjectLockRetainUntilDate": self.until}


class Bucket:
    """One bucket on one S3 endpoint; every key is relative to ``prefix``."""

    def __init__(self, client: Any, name: str, prefix: str = "") -> None:
        self.client = client
        self.name = name
        self.prefix = prefix.strip("/")
        # Each multipart upload holds a part or two in memory; a few at a time keep the
        # peak flat whatever the pool size, while small objects keep the other threads busy.
        self.uploads = threading.BoundedSemaphore(UPLOADS_AT_ONCE)

    def full(self, key: str) -> str:
        """The key inside the bucket."""
        return f"{self.prefix}/{key}" if self.prefix else key

    def where(self, key: str = "") -> str:
        """For messages: bucket and key, never credentials."""
        return f"{self.name}/{self.full(key)}" if key else self.name

    def exists_bucket(self) -> bool:
        """HeadBucket: whether the bucket exists."""
        try:
            with storage_errors("head bucket", self.name):
                self.client.head_bucket(Bucket=self.name)
        except (NotFoundError, StorageError):
            return False
        return True

    def listing(self, prefix: str = "") -> Iterator[Listed]:
        """ListObjectsV2 page by page: every object under ``prefix`` (no HEAD per object)."""
        paginator = self.client.get_paginator("list_objects_v2")
        cut = len(self.prefix) + 1 if self.prefix else 0
        with storage_errors("list", self.where(prefix)):
            for page in paginator.paginate(Bucket=self.name, Prefix=self.full(prefix)):
                for item in page.get("Contents", []):
                    yield Listed(
                        bucket=self.name,
                        key=item["Key"][cut:],
                        size=item["Size"],
                        etag=item["ETag"].strip('"'),
                        modified=item["LastModified"],
                    )

    def read(self, key: str) -> Iterator[bytes]:
        """The object's body in CHUNK-sized chunks."""
        with storage_errors("download", self.where(key)):
            body = self.client.get_object(Bucket=self.name, Key=self.full(key))["Body"]
        with contextlib.closing(body), storage_errors("download", self.where(key)):
            yield from body.iter_chunks(CHUNK)

    def exists(self, key: str) -> bool:
        """HEAD one object (used only where an overwrite must be ruled out)."""
        try:
            with storage_errors("head", self.where(key)):
                self.client.head_object(Bucket=self.name, Key=self.full(key))
        except NotFoundError:
            return False
        return True

    def put(self, key: str, data: bytes, lock: Lock | None = None) -> None:
        """One PutObject."""
        extra = lock.params() if lock else {}
        if lock:
            # S3 refuses a locked PUT without an integrity header; MD5 is the one OSS and
            # older MinIO accept as well.
            digest = hashlib.md5(data, usedforsecurity=False).digest()
            extra["ContentMD5"] = base64.b64encode(digest).decode()
        with storage_errors("upload", self.where(key)):
            self.client.put_object(Bucket=self.name, Key=self.full(key), Body=data, **extra)

    def copy_within(self, source: str, key: str, lock: Lock | None = None) -> None:
        """Server-side copy of ``source`` to ``key`` in this bucket (multipart above 5 GiB)."""
        extra = lock.params() if lock else {}
        with storage_errors("copy", self.where(key)):
            self.client.copy(
                {"Bucket": self.name, "Key": self.full(source)},
                self.name,
                self.full(key),
                ExtraArgs=extra or None,
            )

    def delete(self, keys: list[str]) -> None:
        """DeleteObjects in batches of 1000."""
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self.full(k)} for k in keys[start : start + 1000]]
            with storage_errors("delete", self.where(keys[start])):
                response = self.client.delete_objects(
                    Bucket=self.name, Delete={"Objects": batch, "Quiet": True}
                )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise StorageError(f"delete {first.get('Key')}: {first.get('Code')}")

    def upload_parts(
        self,
        key: str,
        chunks: Iterator[bytes],
        lock: Lock | None = None,
        *,
        expect: str | None = None,
    ) -> tuple[int, str]:
        """Multipart upload of a stream, one part in memory; return (size, sha256).

        With ``expect``, a stream whose sha256 differs is aborted before it becomes visible.
        """
        with self.uploads:
            return self._upload_parts(key, chunks, lock, expect)

    def _upload_parts(
        self, key: str, chunks: Iterator[bytes], lock: Lock | None, expect: str | None
    ) -> tuple[int, str]:
        extra = lock.params() if lock else {}
        full = self.full(key)
        with storage_errors("start upload", self.where(key)):
            upload = self.client.create_multipart_upload(Bucket=self.name, Key=full, **extra)
        upload_id = upload["UploadId"]
        digest = hashlib.sha256()
        size = 0
        parts: list[dict[str, Any]] = []
        try:
            for number, part in enumerate(_parts(chunks), start=1):
                digest.update(part)
                size += len(part)  # a full part's map is exactly PART long
                with storage_errors(f"upload part {number}", self.where(key)):
                    etag = self.client.upload_part(
                        Bucket=self.name, Key=full, UploadId=upload_id, PartNumber=number, Body=part
                    )["ETag"]
                parts.append({"PartNumber": number, "ETag": etag})
            if expect is not None and digest.hexdigest() != expect:
                raise IntegrityError(f"{key}: content does not match its sha256 {expect[:12]}…")
            with storage_errors("complete upload", self.where(key)):
                self.client.complete_multipart_upload(
                    Bucket=self.name, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.name, Key=full, UploadId=upload_id)
            raise
        return size, digest.hexdigest()


def _parts(chunks: Iterator[bytes]) -> Iterator[mmap.mmap | bytes]:
    """Regroup a stream into PART-sized parts (the last may be smaller, never empty).

    Full parts are anonymous maps, valid until the next one is asked for: as bytes, each
    freed part stayed with malloc's arenas, and the peak RSS grew with the threads.
    """
    part = mmap.mmap(-1, PART)
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                taken = min(len(view), PART - part.tell())
                part.write(view[:taken])
                view = view[taken:]
                if part.tell() == PART:
                    part.seek(0)
                    yield part
                    part.close()
                    part = mmap.mmap(-1, PART)
        if part.tell():
            yield part[: part.tell()]
    finally:
        part.close()
