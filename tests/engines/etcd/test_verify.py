"""Verify against a real etcd: checksums, snapshot status, and a scratch etcd compared."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.engines.etcd.etcd_server import EtcdServer
from tests.storage.stores import Inspector
from workers.context import Context
from workers.core.errors import IntegrityError
from workers.core.manifest import VerificationState
from workers.engines.etcd import backup, etcdctl
from workers.engines.etcd.verify import verify
from workers.storage.repository import object_key


@pytest.fixture
def backed_up(etcd: EtcdServer, etcd_context: Callable[..., Context]) -> Context:
    """A context whose etcd holds 300 keys and has one backup of them."""
    etcd.put_many((f"/registry/pods/p{i:03d}", f"pod-{i}") for i in range(300))
    ctx = etcd_context(etcd)
    backup.backup(ctx, "etcd")
    return ctx


def test_shallow_verify_passes_and_says_what_it_checked(backed_up: Context) -> None:
    manifest = backed_up.repo.manifest(backed_up.repo.index("etcd").backups[-1].id)
    checked = verify(backed_up, "etcd", manifest)
    assert checked.verification is not None
    assert checked.verification.state == VerificationState.PASSED
    assert not checked.verification.deep
    assert "snapshot status: revision" in checked.verification.detail


def test_deep_verify_serves_the_snapshot_and_compares_its_keys(backed_up: Context) -> None:
    manifest = backed_up.repo.manifest(backed_up.repo.index("etcd").backups[-1].id)
    checked = verify(backed_up, "etcd", manifest, deep=True)
    record = checked.verification
    assert record is not None and record.deep
    assert record.state == VerificationState.PASSED, record.detail
    assert record.checks["snapshot.db.zst"]["restored_keys"] == 300
    assert record.checks["snapshot.db.zst"]["snapshot"] == "ok"
    assert "300 keys, 40 sampled, all match" in record.detail


def test_a_flipped_byte_is_named_by_verify(backed_up: Context) -> None:
    manifest = backed_up.repo.manifest(backed_up.repo.index("etcd").backups[-1].id)
    Inspector(backed_up.repo.store).flip_byte(object_key(manifest, "snapshot.db.zst"), 100)
    checked = verify(backed_up, "etcd", manifest)
    record = checked.verification
    assert record is not None and record.state == VerificationState.FAILED
    assert "snapshot.db.zst" in record.detail and "checksum mismatch" in record.detail
    assert backed_up.repo.index("etcd").backups[-1].verification.state == "failed"


def test_a_truncated_snapshot_fails_snapshot_status_clearly(
    etcd: EtcdServer, tmp_path: Path
) -> None:
    etcd.put_many((f"k{i}", "v" * 100) for i in range(200))
    whole = tmp_path / "whole.db"
    etcd.ctl("snapshot", "save", str(whole))
    cut = tmp_path / "cut.db"
    cut.write_bytes(whole.read_bytes()[:10_000])
    with pytest.raises(IntegrityError, match=r"snapshot cut.db is truncated: 10,000 bytes"):
        etcdctl.status(cut, cut.name)
    assert etcdctl.status(whole, whole.name).total_keys >= 200


def test_a_damaged_snapshot_file_fails_its_own_trailer(etcd: EtcdServer, tmp_path: Path) -> None:
    etcd.put_many([("a", "1")])
    path = tmp_path / "s.db"
    etcd.ctl("snapshot", "save", str(path))
    data = bytearray(path.read_bytes())
    data[5000] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256 trailer does not match"):
        etcdctl.status(path, path.name)


def test_a_stored_snapshot_that_was_cut_short_fails_verify(
    backed_up: Context, tmp_path: Path
) -> None:
    """A snapshot cut short before upload keeps a good sha256: snapshot status catches it."""
    ctx = backed_up
    good = ctx.repo.manifest(ctx.repo.index("etcd").backups[-1].id)
    with ctx.repo.begin("etcd", backup.KIND) as writer:
        header = b"\0" * 16 + struct.pack("<III", 0xED0CDAED, 2, 4096)
        writer.write(backup.OBJECT, [header + b"\0" * 9000])
        cut = writer.commit(details=good.details)
    record = verify(ctx, "etcd", cut).verification
    assert record is not None and record.state == VerificationState.FAILED
    assert "truncated" in record.detail
