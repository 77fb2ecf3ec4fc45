"""The Store contract, run against both stores: a local directory and S3 (moto's server)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import MotoServer
from tests.storage.stores import s3_store
from workers.core.errors import KosmosError, NotFoundError
from workers.core.ports import Store
from workers.storage.store_local import LocalStore

MIB = 1 << 20


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Each contract test runs once per store."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    server: MotoServer = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("bucket")
    # Credentials moto ignores, distinctive enough to look for in messages.
    return s3_store(server.url, bucket, access_key_id="AKIDEXAMPLE", secret_access_key="s3cr3t-Ex")


def chunked(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("length", [0, 1, 5 * MIB - 1, 12 * MIB + 17])
def test_put_stream_then_get_stream(store: Store, length: int) -> None:
    data = os.urandom(length)
    assert store.put_stream("pg/b1/dump.zst", chunked(data)) == length
    assert store.exists("pg/b1/dump.zst")
    assert b"".join(store.get_stream("pg/b1/dump.zst")) == data
    assert store.get_bytes("pg/b1/dump.zst") == data
    [info] = list(store.list_objects("pg/b1/"))
    assert (info.key, info.size) == ("pg/b1/dump.zst", length)
    assert info.modified.tzinfo is not None


def test_put_bytes_replaces(store: Store) -> None:
    store.put_bytes("_index/pg.json", b"one")
    store.put_bytes("_index/pg.json", b"two")
    assert store.get_bytes("_index/pg.json") == b"two"


def test_missing_keys(store: Store) -> None:
    assert not store.exists("pg/none/manifest.json")
    with pytest.raises(NotFoundError):
        store.get_stream("pg/none/manifest.json")
    with pytest.raises(NotFoundError):
        store.get_bytes("pg/none/manifest.json")
    assert list(store.list_objects("pg/none/")) == []


def test_list_objects_in_key_order_with_prefix_semantics(store: Store) -> None:
    # No key is also a "directory" of another: a file system cannot hold both.
    keys = ["p/b", "p/a/c", "p/a.x", "p/ab", "p/a/b/d", "p-old/x", "q/y", "p/a/b0"]
    for key in keys:
        store.put_bytes(key, key.encode())
    listed = [info.key for info in store.list_objects("p/")]
    assert listed == sorted(k for k in keys if k.startswith("p/"))
    # A prefix is text, not a directory: "p" also matches "p-old/…", as in S3.
    assert [info.key for info in store.list_objects("p")] == sorted(
        k for k in keys if k.startswith("p")
    )
    assert [info.key for info in store.list_objects("p/a/")] == ["p/a/b/d", "p/a/b0", "p/a/c"]
    assert [info.key for info in store.list_objects("")] == sorted(keys)
    sizes = {info.key: info.size for info in store.list_objects("")}
    assert sizes == {k: len(k) for k in keys}


def test_delete(store: Store) -> None:
    for key in ("pg/b1/a", "pg/b1/b", "pg/b2/a"):
        store.put_bytes(key, b"x")
    assert store.delete(["pg/b1/a", "pg/b1/b", "pg/b1/never"]) == 3
    assert [info.key for info in store.list_objects("pg/")] == ["pg/b2/a"]
    assert not store.exists("pg/b1/a")
    assert store.delete([]) == 0


def test_many_deletes_batch(store: Store) -> None:
    keys = [f"pg/many/{n:05d}" for n in range(1100)]
    for key in keys[:30]:
        store.put_bytes(key, b"")
    assert store.delete(keys) == 1100
    assert list(store.list_objects("pg/many/")) == []


class Gate:
    """A source that yields ``before`` bytes, then waits to be released."""

    def __init__(self, before: int, after: int = MIB) -> None:
        self.before = before
        self.after = after
        self.reached = threading.Event()
        self.release = threading.Event()
        self.fail = False

    def __iter__(self) -> Iterator[bytes]:
        yield from chunked(os.urandom(self.before))
        self.reached.set()
        assert self.release.wait(30)
        if self.fail:
            raise RuntimeError("source failed midway")
        yield os.urandom(self.after)


def start_put(store: Store, key: str, gate: Gate) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(store.put_stream(key, gate))
        except BaseException as exc:  # recorded for the test to inspect
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert gate.reached.wait(30)
    return thread, outcome


def wait_for_pending(store: Store, prefix: str) -> list[object]:
    for _ in range(200):
        pending = store.pending_uploads(prefix)
        if pending:
            return list(pending)
        threading.Event().wait(0.05)
    raise AssertionError("no pending upload appeared")


def test_write_in_progress_is_invisible_and_pending(store: Store) -> None:
    gate = Gate(before=11 * MIB)
    thread, outcome = start_put(store, "pg/b1/big.zst", gate)
    try:
        [pending] = wait_for_pending(store, "pg/")
        assert pending.key == "pg/b1/big.zst"  # type: ignore[attr-defined]
        assert not store.exists("pg/b1/big.zst")
        assert list(store.list_objects("pg/")) == []
        with pytest.raises(NotFoundError):
            store.get_bytes("pg/b1/big.zst")
        assert store.pending_uploads("other/") == []
    finally:
        gate.release.set()
        thread.join(30)
    assert outcome == [12 * MIB]
    assert store.pending_uploads("pg/") == []
    assert [info.size for info in store.list_objects("pg/")] == [12 * MIB]


def test_failed_source_leaves_nothing(store: Store) -> None:
    gate = Gate(before=11 * MIB)
    gate.fail = True
    thread, outcome = start_put(store, "pg/b1/big.zst", gate)
    gate.release.set()
    thread.join(30)
    assert isinstance(outcome[0], RuntimeError)
    assert not store.exists("pg/b1/big.zst")
    assert store.pending_uploads("pg/") == []
    assert list(store.list_objects("pg/")) == []


def test_aborted_upload_never_appears(store: Store) -> None:
    gate = Gate(before=11 * MIB)
    thread, outcome = start_put(store, "pg/b1/big.zst", gate)
    try:
        [pending] = wait_for_pending(store, "pg/")
        store.abort_upload(pending)  # type: ignore[arg-type]
        assert store.pending_uploads("pg/") == []
    finally:
        gate.release.set()
        thread.join(30)
    # The writer finds its upload gone and fails; it must not leave a partial object.
    assert isinstance(outcome[0], KosmosError), outcome
    assert not store.exists("pg/b1/big.zst")
    assert store.pending_uploads("pg/") == []


def test_round_trip_checksum_of_a_larger_object(store: Store) -> None:
    digest = hashlib.sha256()

    def source() -> Iterator[bytes]:
        for _ in range(23):
            block = os.urandom(MIB)
            digest.update(block)
            yield block

    assert store.put_stream("pg/b1/large", source()) == 23 * MIB
    again = hashlib.sha256()
    for chunk in store.get_stream("pg/b1/large"):
        again.update(chunk)
    assert again.hexdigest() == digest.hexdigest()


def test_describe_names_the_place_without_credentials(store: Store) -> None:
    text = store.describe()
    assert text.startswith(("file://", "s3://"))
    assert "AKIDEXAMPLE" not in text and "s3cr3t" not in text
