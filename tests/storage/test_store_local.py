"""LocalStore specifics: temp files, unsafe keys, and what is left on disk."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.sync import Checked
from workers.core.errors import NotFoundError, StorageError
from workers.core.ports import PendingUpload
from workers.storage.store_local import LocalStore

MIB = 1 << 20


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_a_write_in_progress_is_only_a_hidden_temp_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    reached, release = threading.Event(), threading.Event()

    def source() -> Iterator[bytes]:
        yield os.urandom(MIB)
        reached.set()
        assert release.wait(30)
        yield os.urandom(MIB)

    writer = Checked(store.put_stream, "pg/b1/dump.zst", source())
    writer.start()
    try:
        assert reached.wait(30)
        [temp] = files_under(tmp_path)
        assert temp.startswith("pg/b1/.dump.zst.") and temp.endswith(".part")
        assert not store.exists("pg/b1/dump.zst")
        assert list(store.list_objects("")) == []
        [pending] = store.pending_uploads("pg/")
        assert (pending.key, pending.upload_id) == ("pg/b1/dump.zst", temp)
    finally:
        release.set()
        writer.check(30)  # the generator's assert, or the store's error, fails the test here
    assert files_under(tmp_path) == ["pg/b1/dump.zst"]
    assert (tmp_path / "pg/b1/dump.zst").stat().st_size == 2 * MIB


def test_objects_that_merely_end_in_part_stay_visible(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("pg/b1/base.part", b"data")
    store.put_bytes("pg/b1/.hidden.part", b"data")
    assert [i.key for i in store.list_objects("pg/")] == ["pg/b1/.hidden.part", "pg/b1/base.part"]
    assert store.pending_uploads("pg/") == []


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "../outside", "pg/../../outside", "pg/.x.0123456789ab.part"]
)
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(StorageError, match="unsafe"):
        store.put_bytes(key, b"x")
    assert not (tmp_path / "outside").exists()


def test_unsafe_prefixes_are_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    with pytest.raises(StorageError, match="unsafe"):
        list(store.list_objects("../"))


def test_abort_only_removes_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("pg/b1/manifest.json", b"{}")
    fake = PendingUpload(
        key="pg/b1/manifest.json", upload_id="pg/b1/manifest.json", started=datetime.now(UTC)
    )
    with pytest.raises(StorageError):
        store.abort_upload(fake)
    assert store.exists("pg/b1/manifest.json")


def test_delete_prunes_empty_folders_but_not_the_root(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = LocalStore(root)
    store.put_bytes("pg/b1/a/b/c", b"x")
    store.put_bytes("pg/b2/d", b"x")
    store.delete(["pg/b1/a/b/c"])
    assert not (root / "pg/b1").exists()
    assert (root / "pg/b2/d").exists()
    store.delete(["pg/b2/d"])
    assert root.is_dir() and list(root.iterdir()) == []


def test_missing_root_lists_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "never-created")
    assert list(store.list_objects("pg/")) == []
    assert store.pending_uploads("") == []
    with pytest.raises(NotFoundError, match="pg/b1/x"):
        store.get_stream("pg/b1/x")


def test_a_root_that_is_a_file_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = LocalStore(blocker)
    with pytest.raises(StorageError, match="cannot"):
        store.put_bytes("pg/b1/x", b"x")
