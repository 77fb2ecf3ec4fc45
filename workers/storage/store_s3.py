"""A Store on any S3-compatible endpoint (Alibaba OSS, MinIO, AWS) through botocore.

Its clients are botocore's own: boto3's session adds s3transfer's managed transfers, which
this store never uses, and its import costs twice botocore's, paid by every ``wal-push``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import mmap
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from workers.core.config import StorageSettings
from workers.core.errors import NotFoundError, StorageError, StorageUnavailable
from workers.core.ports import ObjectInfo, PendingUpload

_MIB = 1 << 20
_MAX_PARTS = 10_000  # the S3 (and OSS) limit on parts per multipart upload
_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}
_TRANSIENT_CODES = {
    "SlowDown",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
    "503",
    "500",
}


def make_s3_client(settings: StorageSettings) -> Any:
    """An S3 client configured for S3-compatible stores (see ARCHITECTURE field lessons)."""
    config = Config(
        # boto3 >= 1.36 sends CRC32 trailers that OSS and older MinIO reject; our own
        # sha256 in the manifest is the integrity check that counts.
        request_checksum_calculation=settings.checksums,
        response_checksum_validation=settings.checksums,
        s3={"addressing_style": settings.addressing_style},
        retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        connect_timeout=settings.connect_timeout.total_seconds(),
        read_timeout=settings.read_timeout.total_seconds(),
        max_pool_connections=max(10, settings.max_concurrency * 2),
    )
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=_secret(settings.access_key_id),
        aws_secret_access_key=_secret(settings.secret_access_key),
        config=config,
    )
    client.meta.events.register("before-sign.s3.DeleteObjects", _add_content_md5)
    return client


def _add_content_md5(request: Any, **_: Any) -> None:
    # botocore >= 1.36 sends a CRC32 instead of Content-MD5 on DeleteObjects; OSS and older
    # MinIO refuse the batch delete without Content-MD5 (MissingContentMD5).
    body = request.body
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, bytes) and "Content-MD5" not in request.headers:
        digest = hashlib.md5(body, usedforsecurity=False).digest()
        request.headers["Content-MD5"] = base64.b64encode(digest).decode()


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    text = value.get_secret_value()
    return text or None


@contextlib.contextmanager
def storage_errors(action: str, where: str) -> Iterator[None]:
    """Translate botocore failures into StorageError / StorageUnavailable / NotFoundError."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _NOT_FOUND:
            raise NotFoundError(f"{action}: {where} does not exist") from exc
        if code == "NoSuchBucket":
            raise StorageError(
                f"{action}: bucket does not exist at {where}", hint="check storage.url"
            ) from exc
        if code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
            raise StorageError(
                f"{action}: access denied ({code}) at {where}",
                hint="check storage credentials",
            ) from exc
        if code in _TRANSIENT_CODES:
            raise StorageUnavailable(f"{action}: storage busy ({code}) at {where}") from exc
        raise StorageError(
            f"{action}: {code or 'error'}: {error.get('Message', '')} at {where}"
        ) from exc
    except (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError) as exc:
        raise StorageUnavailable(
            f"{action}: storage unreachable at {where}",
            hint="check storage.endpoint_url and network",
        ) from exc
    except BotoCoreError as exc:
        raise StorageUnavailable(f"{action}: {exc} at {where}") from exc


class S3Store:
    """Objects under ``s3://bucket/prefix``; large writes go through multipart upload."""

    def __init__(self, settings: StorageSettings, client: Any | None = None) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.client = client if client is not None else make_s3_client(settings)
        self.part_size = settings.part_size_mib * _MIB

    def describe(self) -> str:
        """Endpoint and bucket, never credentials."""
        endpoint = self.settings.endpoint_url or "aws"
        return f"s3://{self.bucket}/{self.prefix} at {endpoint}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        """Upload with bounded memory: at most ``max_concurrency + 1`` parts in memory."""
        head = bytearray()
        iterator = iter(chunks)
        for chunk in iterator:
            head += chunk
            if len(head) >= self.part_size:
                handed = [head]
                del head  # _multipart frees it once it is copied into the first part
                return self._multipart(key, handed, iterator)
        self.put_bytes(key, bytes(head))
        return len(head)

    def _multipart(self, key: str, head: list[bytearray], rest: Iterator[bytes]) -> int:
        full = self._key(key)
        with storage_errors("start upload", full):
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=full)[
                "UploadId"
            ]
        uploader = _PartUploader(self, full, upload_id)
        part = _Part(self.part_size)
        try:
            size = 0
            for chunk in _handed(head, rest):
                view = memoryview(chunk)
                while view:
                    view = view[part.fill(view) :]
                    if part.full:
                        size += part.size
                        uploader.submit(part)  # waits while max_concurrency parts are in flight
                        part = _Part(self.part_size)
                del chunk, view
            if part.size:
                size += part.size
                uploader.submit(part)
            else:
                part.close()
            uploader.complete()
            return size
        except BaseException:
            part.close()
            uploader.abort()
            raise

    def put_bytes(self, key: str, data: bytes) -> None:
        """One PutObject."""
        full = self._key(key)
        with storage_errors("upload", full):
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data)

    def get_stream(self, key: str) -> Iterator[bytes]:
        """Stream the object body in 1 MiB chunks."""
        full = self._key(key)
        with storage_errors("download", full):
            body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
        return self._chunks(body, full)

    def _chunks(self, body: Any, full: str) -> Iterator[bytes]:
        with contextlib.closing(body), storage_errors("download", full):
            yield from body.iter_chunks(_MIB)

    def get_bytes(self, key: str) -> bytes:
        """The whole object."""
        return b"".join(self.get_stream(key))

    def exists(self, key: str) -> bool:
        """HEAD the object."""
        try:
            with storage_errors("head", self._key(key)):
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except NotFoundError:
            return False
        return True

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """ListObjectsV2, page by page."""
        full = self._key(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        with storage_errors("list", full):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=self._rel(item["Key"]), size=item["Size"], modified=item["LastModified"]
                    )

    def delete(self, keys: Iterable[str]) -> int:
        """DeleteObjects in batches of 1000."""
        batch: list[str] = []
        count = 0
        for key in keys:
            batch.append(self._key(key))
            if len(batch) == 1000:
                count += self._delete_batch(batch)
                batch = []
        if batch:
            count += self._delete_batch(batch)
        return count

    def _delete_batch(self, keys: list[str]) -> int:
        with storage_errors("delete", keys[0]):
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
        errors = response.get("Errors") or []
        if errors:
            raise StorageError(
                f"delete: {len(errors)} objects not deleted, first {errors[0].get('Key')}"
            )
        return len(keys)

    def pending_uploads(self, prefix: str) -> list[PendingUpload]:
        """ListMultipartUploads under the prefix."""
        full = self._key(prefix)
        found = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        with storage_errors("list uploads", full):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Uploads", []):
                    found.append(
                        PendingUpload(
                            key=self._rel(item["Key"]),
                            upload_id=item["UploadId"],
                            started=item["Initiated"],
                        )
                    )
        return found

    def abort_upload(self, upload: PendingUpload) -> None:
        """AbortMultipartUpload; an upload already gone is fine."""
        full = self._key(upload.key)
        with contextlib.suppress(NotFoundError), storage_errors("abort upload", full):
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=upload.upload_id
            )


def _handed(head: list[bytearray], rest: Iterator[bytes]) -> Iterator[bytes | bytearray]:
    # Yields the head buffer without keeping a reference, so it is freed once copied.
    while head:
        yield head.pop()
    yield from rest


class _Part:
    """One part being filled, in an anonymous map outside the Python heap.

    Parts are large and short-lived. As bytes, each freed part stays with malloc (its
    mmap threshold rises after the first one), and across upload threads the process
    RSS drifted 30-120 MiB above the parts actually held. A map's pages are touched only
    as it fills and go back to the system when it is closed after its upload.
    """

    def __init__(self, capacity: int) -> None:
        self.map = mmap.mmap(-1, capacity)
        self.capacity = capacity
        self.size = 0

    @property
    def full(self) -> bool:
        """Whether the part holds ``capacity`` bytes."""
        return self.size == self.capacity

    def fill(self, data: memoryview) -> int:
        """Append as much of ``data`` as fits; return how many bytes were taken."""
        count = min(len(data), self.capacity - self.size)
        self.map.write(data[:count])
        self.size += count
        return count

    def body(self) -> mmap.mmap | bytes:
        """What to upload: the map itself (boto3 reads it as a seekable file), or the bytes
        of a short last part."""
        if self.full:
            self.map.seek(0)
            return self.map
        data = self.map[: self.size]
        self.map.close()
        return data

    def close(self) -> None:
        """Give the pages back."""
        self.map.close()


class _PartUploader:
    """Uploads parts on a small pool; the semaphore bounds parts held in memory."""

    def __init__(self, store: S3Store, key: str, upload_id: str) -> None:
        self.store = store
        self.key = key
        self.upload_id = upload_id
        limit = store.settings.max_concurrency
        self.slots = threading.BoundedSemaphore(limit)
        self.pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="s3-part")
        self.futures: list[Future[dict[str, Any]]] = []
        self.failure: BaseException | None = None

    def submit(self, part: _Part) -> None:
        """Upload one part; blocks while ``max_concurrency`` parts are in flight."""
        number = len(self.futures) + 1
        if number > _MAX_PARTS:
            raise StorageError(
                f"upload of {self.key} needs more than {_MAX_PARTS} parts",
                hint="raise storage.part_size_mib",
            )
        self.slots.acquire()
        if self.failure is not None:
            # A part failed while we waited for a slot: stop now, not one part later.
            self.slots.release()
            raise self.failure
        self.futures.append(self.pool.submit(self._upload, number, part.body()))

    def _upload(self, number: int, data: mmap.mmap | bytes) -> dict[str, Any]:
        try:
            with storage_errors(f"upload part {number}", self.key):
                response = self.store.client.upload_part(
                    Bucket=self.store.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                    PartNumber=number,
                    Body=data,
                )
            return {"PartNumber": number, "ETag": response["ETag"]}
        except BaseException as exc:
            if self.failure is None:
                self.failure = exc
            raise
        finally:
            if isinstance(data, mmap.mmap):
                data.close()  # its pages go back to the system now, not when malloc decides
            self.slots.release()

    def complete(self) -> None:
        """Wait for every part, then complete the upload (the object appears now)."""
        parts = [future.result() for future in self.futures]
        self.pool.shutdown()
        with storage_errors("complete upload", self.key):
            self.store.client.complete_multipart_upload(
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            )

    def abort(self) -> None:
        """Stop queued parts, wait for running ones, and abort the upload server-side."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        # The original error matters more than a failed abort; the sweep retries later.
        with contextlib.suppress(Exception), storage_errors("abort upload", self.key):
            self.store.client.abort_multipart_upload(
                Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id
            )
