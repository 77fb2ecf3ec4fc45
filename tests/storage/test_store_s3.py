"""S3Store specifics against moto's server: multipart, memory bound, outages, headers sent."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import s3_client
from tests.services import MotoServer
from tests.storage.stores import s3_store
from workers.core.errors import NotFoundError, StorageError, StorageUnavailable
from workers.storage.store_s3 import S3Store

MIB = 1 << 20


def blocks(count: int, size: int = MIB) -> Iterator[bytes]:
    for _ in range(count):
        yield os.urandom(size)


class Sent:
    """What botocore put on the wire for one request, captured as it was sent."""

    def __init__(self, request: Any) -> None:
        self.url: str = request.url
        self.headers = {name.lower() for name in request.headers}
        body = request.body
        self.size = len(body) if hasattr(body, "__len__") else len(body.getvalue())


def record_requests(store: S3Store, operation: str) -> list[Sent]:
    """Collect the HTTP requests botocore sends for ``operation``."""
    seen: list[Sent] = []
    store.client.meta.events.register(
        f"before-send.s3.{operation}", lambda request, **_: seen.append(Sent(request))
    )
    return seen


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    assert match is not None
    return int(match.group(1))


def peak_rss_growth(work: Callable[[], object]) -> int:
    """Bytes the process's peak RSS rose above its RSS before ``work`` (Linux)."""
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to now
    before = _status_kib("VmRSS")
    work()
    return (_status_kib("VmHWM") - before) * 1024


def test_multipart_upload_uses_parts_of_the_configured_size(
    s3_server: MotoServer, bucket: str
) -> None:
    store = s3_store(s3_server.url, bucket, part_size_mib=5, max_concurrency=3)
    parts = record_requests(store, "UploadPart")
    data = os.urandom(23 * MIB)
    assert store.put_stream(
        "pg/b/obj", (data[i : i + MIB] for i in range(0, len(data), MIB))
    ) == len(data)
    assert sorted(request.size for request in parts) == [3 * MIB] + [5 * MIB] * 4
    head = s3_client(s3_server.url).head_object(Bucket=bucket, Key="kosmos/pg/b/obj")
    assert head["ETag"].strip('"').endswith("-5")
    assert store.get_bytes("pg/b/obj") == data


def test_small_objects_are_one_put(s3_server: MotoServer, bucket: str) -> None:
    store = s3_store(s3_server.url, bucket)
    puts = record_requests(store, "PutObject")
    uploads = record_requests(store, "CreateMultipartUpload")
    assert store.put_stream("pg/b/small", blocks(4)) == 4 * MIB
    assert len(puts) == 1 and uploads == []


@pytest.mark.parametrize("concurrency", [1, 3])
def test_memory_stays_within_concurrency_plus_one_parts(
    s3_server: MotoServer, bucket: str, concurrency: int
) -> None:
    store = s3_store(s3_server.url, bucket, part_size_mib=8, max_concurrency=concurrency)
    chunk = 256 * 1024
    store.put_stream("pg/b/warm-up", blocks(20 * 4, chunk))  # threads, pools, imports
    growth = peak_rss_growth(lambda: store.put_stream("pg/b/obj", blocks(80 * 4, chunk)))
    # The parts in flight, the part being filled, one source chunk, and 4 MiB of slack.
    bound = (concurrency + 1) * 8 * MIB + chunk + 4 * MIB
    assert growth <= bound, f"peak RSS grew {growth / MIB:.1f} MiB > {bound / MIB:.1f} MiB"
    assert store.get_bytes("pg/b/obj")[:10]


class Interrupted(BaseException):
    """Not an Exception: a KeyboardInterrupt or a job timeout looks like this."""


def test_any_failure_mid_upload_aborts_the_multipart_upload(
    s3_server: MotoServer, bucket: str
) -> None:
    store = s3_store(s3_server.url, bucket, part_size_mib=5, max_concurrency=2)

    def source() -> Iterator[bytes]:
        yield from blocks(12)
        raise Interrupted

    with pytest.raises(Interrupted):
        store.put_stream("pg/b/obj", source())
    client = s3_client(s3_server.url)
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert not store.exists("pg/b/obj")


def test_checksum_trailers_follow_the_setting(s3_server: MotoServer, bucket: str) -> None:
    # OSS and older MinIO refuse boto3's default CRC32 trailers; "when_required" omits them.
    quiet = s3_store(s3_server.url, bucket, checksums="when_required", part_size_mib=5)
    sent = record_requests(quiet, "PutObject")
    parts = record_requests(quiet, "UploadPart")
    quiet.put_bytes("pg/b/a", b"x" * 1000)
    quiet.put_stream("pg/b/big", blocks(6))
    for request in [*sent, *parts]:
        names = request.headers
        assert not names & {"x-amz-sdk-checksum-algorithm", "x-amz-trailer"}
        assert not any(name.startswith("x-amz-checksum-") for name in names)
    assert sent and parts
    loud = s3_store(s3_server.url, bucket, checksums="when_supported")
    loud_sent = record_requests(loud, "PutObject")
    loud.put_bytes("pg/b/c", b"x" * 1000)
    names = loud_sent[0].headers
    assert names & {"x-amz-sdk-checksum-algorithm", "x-amz-trailer"} or any(
        name.startswith("x-amz-checksum-") for name in names
    )


def test_path_style_addressing(s3_server: MotoServer, bucket: str) -> None:
    store = s3_store(s3_server.url, bucket, addressing_style="path")
    sent = record_requests(store, "PutObject")
    store.put_bytes("pg/b/a", b"x")
    assert sent[0].url.startswith(f"{s3_server.url}/{bucket}/kosmos/pg/b/a")


def test_missing_bucket_is_a_storage_error_not_an_outage(s3_server: MotoServer) -> None:
    store = s3_store(s3_server.url, "no-such-bucket-here")
    with pytest.raises(StorageError) as caught:
        store.put_bytes("pg/b/a", b"x")
    assert not isinstance(caught.value, StorageUnavailable)
    assert caught.value.transient is False
    assert "storage.url" in caught.value.hint


def test_missing_object_and_upload(s3_server: MotoServer, bucket: str) -> None:
    store = s3_store(s3_server.url, bucket)
    with pytest.raises(NotFoundError, match="kosmos/pg/none"):
        store.get_bytes("pg/none")
    assert not store.exists("pg/none")


@pytest.fixture(scope="module")
def down_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    """A store whose own moto server was started, used, and stopped."""
    server = MotoServer(log_dir=tmp_path_factory.mktemp("down")).start()
    try:
        s3_client(server.url).create_bucket(Bucket="gone")
        store = s3_store(server.url, "gone", max_attempts=1, connect_timeout=1, read_timeout=2)
        store.put_bytes("pg/b/a", b"x")
    finally:
        server.stop()
    yield store


@pytest.mark.parametrize(
    "operation",
    [
        lambda s: s.put_bytes("pg/b/x", b"x"),
        lambda s: s.put_stream("pg/b/y", blocks(6)),
        lambda s: s.get_stream("pg/b/a"),
        lambda s: s.get_bytes("pg/b/a"),
        lambda s: s.exists("pg/b/a"),
        lambda s: list(s.list_objects("pg/")),
        lambda s: s.pending_uploads("pg/"),
        lambda s: s.delete(["pg/b/a"]),
    ],
    ids=[
        "put_bytes",
        "put_stream",
        "get_stream",
        "get_bytes",
        "exists",
        "list",
        "pending",
        "delete",
    ],
)
def test_unreachable_endpoint_is_transient_and_quick(down_store: S3Store, operation: Any) -> None:
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as caught:
        operation(down_store)
    assert caught.value.transient is True
    assert "unreachable" in caught.value.message or "storage" in caught.value.message
    assert time.monotonic() - started < 15
