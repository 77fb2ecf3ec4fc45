"""Backup and restore against a real etcd: every key comes back in a new data dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.engines.etcd.etcd_server import EtcdServer
from workers.context import Context
from workers.core.errors import UsageError
from workers.engines.etcd import backup, restore
from workers.engines.etcd.scratch import free_port

KEYS = 10_000


def test_ten_thousand_keys_come_back_in_a_new_data_dir(
    etcd: EtcdServer, etcd_context: Callable[..., Context], tmp_path: Path
) -> None:
    etcd.put_many((f"/registry/k{i:05d}", f"value-{i}") for i in range(KEYS))
    ctx = etcd_context(etcd)
    manifest = backup.backup(ctx, "etcd")
    etcd.ctl("del", "", "--prefix")
    assert etcd.count() == 0

    data_dir = tmp_path / "restored"
    peer_port = free_port()
    result = restore.restore(
        ctx,
        "etcd",
        "latest",
        data_dir=str(data_dir),
        member="back",
        peer_url=f"http://127.0.0.1:{peer_port}",
    )

    assert (result.backup_id, result.data_dir) == (manifest.id, str(data_dir))
    assert result.checksums_matched
    back = EtcdServer(tmp_path, data_dir=data_dir, name="back", peer_port=peer_port).start()
    try:
        assert back.count() == KEYS
        assert back.ctl("get", "/registry/k09999", "--print-value-only").strip() == "value-9999"
    finally:
        back.stop()
    assert etcd.count() == 0  # the live etcd was never touched


def test_manifest_records_the_snapshot_status_and_keys(
    etcd: EtcdServer, etcd_context: Callable[..., Context]
) -> None:
    etcd.put_many((f"k{i}", "v") for i in range(50))
    manifest = backup.backup(etcd_context(etcd), "etcd")
    facts = backup.facts_of(manifest)
    assert facts.method == "etcdctl"
    assert facts.status.revision >= 2
    assert facts.status.total_keys >= 50
    assert facts.status.total_size > 0
    assert facts.keys is not None and facts.keys.count == 50
    assert len(facts.keys.sample) == 40
    assert manifest.objects[0].name == "snapshot.db.zst"


def test_restore_never_writes_over_a_data_dir(
    etcd: EtcdServer, etcd_context: Callable[..., Context], tmp_path: Path
) -> None:
    etcd.put_many([("a", "1")])
    ctx = etcd_context(etcd)
    backup.backup(ctx, "etcd")
    live = tmp_path / "live"
    live.mkdir()
    (live / "member").mkdir()
    with pytest.raises(UsageError, match="not empty"):
        restore.restore(ctx, "etcd", "latest", data_dir=str(live))
    assert [p.name for p in live.iterdir()] == ["member"]


def test_a_drill_serves_the_snapshot_on_loopback_and_keeps_nothing(
    etcd: EtcdServer, etcd_context: Callable[..., Context]
) -> None:
    etcd.put_many((f"/registry/k{i}", "v") for i in range(500))
    ctx = etcd_context(etcd)
    backup.backup(ctx, "etcd")
    result = restore.restore(ctx, "etcd", "latest", scratch=True)
    assert result.restored_keys == 500
    assert not Path(result.snapshot).parent.exists()


def test_fetch_only_downloads_and_checks_for_the_k3s_reset(
    etcd: EtcdServer, etcd_context: Callable[..., Context], tmp_path: Path
) -> None:
    etcd.put_many([("a", "1")])
    ctx = etcd_context(etcd)
    manifest = backup.backup(ctx, "etcd")
    result = restore.restore(ctx, "etcd", manifest.id[:-2])
    snapshot = tmp_path / "snapshots" / f"kosmos-restore-{manifest.id}.db"
    assert result.snapshot == str(snapshot) and snapshot.is_file()
    assert result.commands[1] == (
        f"k3s server --cluster-reset --cluster-reset-restore-path={snapshot}"
    )
    assert result.ran == []
    with pytest.raises(UsageError, match="already exists"):
        restore.restore(ctx, "etcd", manifest.id)
