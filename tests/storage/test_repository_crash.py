"""Commit atomicity: a writer process killed with SIGKILL mid-upload, then the sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.services import MotoServer
from tests.storage.stores import Inspector, local_store, s3_store
from tests.sync import wait_until
from workers.core.catalog import find_backup
from workers.core.errors import NotFoundError
from workers.storage.repository import Repository, manifest_key
from workers.storage.store_local import LocalStore
from workers.storage.store_s3 import S3Store


def start_writer(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start the writer process; return it and the id of the backup it is writing."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.writer_process", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        pytest.fail(f"writer died before starting: {proc.stderr.read() if proc.stderr else ''}")
    return proc, json.loads(line)["id"]


def kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL


def assert_nothing_visible(repo: Repository, backup_id: str) -> None:
    """The killed backup does not exist: no manifest, not in the index, not resolvable."""
    component = backup_id.split("-")[0]
    assert not repo.store.exists(manifest_key(component, backup_id))
    with pytest.raises(NotFoundError):
        repo.manifest(backup_id)
    index = repo.index(component)
    assert index.backups == []
    assert repo.rebuild_index(component).backups == []
    assert find_backup(index, "latest") is None
    assert find_backup(index, backup_id) is None


def test_writer_killed_mid_multipart_upload_leaves_nothing_and_is_swept(
    s3_server: MotoServer, bucket: str
) -> None:
    store = s3_store(s3_server.url, bucket)
    outside = Inspector(store)
    proc, backup_id = start_writer(
        "--store", "s3", "--endpoint", s3_server.url, "--bucket", bucket,
        "--size-mib", "200", "--delay", "0.05",
    )  # fmt: skip
    data_key = f"kosmos/postgres/{backup_id}/data.bin"
    try:

        def parts_uploaded() -> bool:
            uploads = outside.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
            if not any(u["Key"] == data_key for u in uploads):
                return False
            upload_id = next(u["UploadId"] for u in uploads if u["Key"] == data_key)
            parts = outside.client.list_parts(Bucket=bucket, Key=data_key, UploadId=upload_id)
            return len(parts.get("Parts", [])) >= 2

        wait_until(parts_uploaded, 30, "the writer's second uploaded part")
    finally:
        kill(proc)

    repo = Repository(store)
    assert outside.uploads() == [data_key]  # the killed writer could not clean up
    assert f"kosmos/postgres/{backup_id}/meta.json" in outside.raw_keys()
    assert data_key not in outside.raw_keys()
    assert_nothing_visible(repo, backup_id)

    report = repo.sweep(older_than=timedelta(0), components=["postgres", "etcd"])
    assert report.aborted_uploads == [f"postgres/{backup_id}/data.bin"]
    assert report.orphan_backups == [backup_id]
    assert outside.client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert [k for k in outside.raw_keys() if k.startswith("kosmos/postgres/")] == []
    again = repo.sweep(older_than=timedelta(0), components=["postgres"])
    assert (again.aborted_uploads, again.orphan_backups) == ([], [])


def test_writer_killed_mid_write_on_a_local_store_leaves_only_a_temp_file(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = local_store(root)
    proc, backup_id = start_writer(
        "--store", "local", "--root", str(root), "--size-mib", "200", "--delay", "0.02",
    )  # fmt: skip
    folder = root / "postgres" / backup_id
    try:

        def temp_growing() -> bool:
            temps = list(folder.glob(".data.bin.*.part"))
            return bool(temps) and temps[0].stat().st_size >= 4 << 20

        wait_until(temp_growing, 30, "the writer's temp file")
    finally:
        kill(proc)

    repo = Repository(store)
    names = sorted(p.name for p in folder.iterdir())
    assert names[1] == "meta.json" and names[0].startswith(".data.bin.")
    assert not (folder / "data.bin").exists()
    assert [i.key for i in store.list_objects("postgres/")] == [f"postgres/{backup_id}/meta.json"]
    assert [p.key for p in store.pending_uploads("postgres/")] == [f"postgres/{backup_id}/data.bin"]
    assert_nothing_visible(repo, backup_id)

    report = repo.sweep(older_than=timedelta(0), components=["postgres"])
    assert report.aborted_uploads == [f"postgres/{backup_id}/data.bin"]
    assert report.orphan_backups == [backup_id]
    assert not folder.exists()
    assert store.pending_uploads("postgres/") == []


def test_sweep_spares_recent_work_and_other_layouts(tmp_path: Path) -> None:
    store = local_store(tmp_path / "store")
    repo = Repository(store)
    with repo.begin("postgres", "x") as writer:
        writer.write("dump", [b"committed"])
        kept = writer.commit()
    store.put_bytes("postgres/postgres-20261124T0300Z-0a0a/dump.zst", b"orphan")
    store.put_bytes("postgres/wals/000000010000000000000001", b"not a backup folder")
    store.put_bytes("postgres/etcd-20261124T0300Z-0b0b/x", b"another component's id")
    assert repo.sweep(older_than=timedelta(hours=1), components=["postgres"]).orphan_backups == []
    report = repo.sweep(older_than=timedelta(0), components=["postgres"])
    assert report.orphan_backups == ["postgres-20261124T0300Z-0a0a"]
    left = sorted(i.key for i in store.list_objects("postgres/"))
    assert left == [
        "postgres/etcd-20261124T0300Z-0b0b/x",
        f"postgres/{kept.id}/dump.zst",
        f"postgres/{kept.id}/manifest.json",
        "postgres/wals/000000010000000000000001",
    ]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_writer_that_finishes_commits(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The same program, left alone, does commit: the kill tests kill a working writer.
    if kind == "s3":
        server: MotoServer = request.getfixturevalue("s3_server")
        bucket: str = request.getfixturevalue("bucket")
        store: LocalStore | S3Store = s3_store(server.url, bucket)
        args = ["--store", "s3", "--endpoint", server.url, "--bucket", bucket]
    else:
        store = local_store(tmp_path / "store")
        args = ["--store", "local", "--root", str(tmp_path / "store")]
    proc, backup_id = start_writer(*args, "--size-mib", "12", "--delay", "0")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["committed"] == backup_id
    manifest = Repository(store).manifest(backup_id)
    assert [e.name for e in manifest.objects] == ["meta.json", "data.bin"]
    assert manifest.objects[1].size == 12 << 20
