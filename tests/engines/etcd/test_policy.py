"""The etcd engine's pure parts and its retention: 7 days, never fewer than the newest 3."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.engines.etcd.etcd_server import EtcdServer
from workers.context import Context
from workers.core.errors import EngineError, NotFoundError, UsageError
from workers.engines.etcd import backup, k3s
from workers.engines.etcd.options import EtcdRestoreOptions
from workers.engines.etcd.snapshot import KeyFacts, SampledKey, compare


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_retention_keeps_seven_days_and_never_fewer_than_three(
    etcd: EtcdServer, etcd_context: Callable[..., Context]
) -> None:
    etcd.put_many([("a", "1")])
    clock = Clock()
    ctx = etcd_context(etcd)
    ctx.clock = clock
    made = []
    for _ in range(5):  # every 6 hours, then 10 days pass
        made.append(backup.backup(ctx, "etcd").id)
        clock.now += timedelta(hours=6)
    clock.now += timedelta(days=10)
    assert [d.backup_id for d in backup.prune(ctx, "etcd", dry_run=True)] == made[:2]
    assert len(ctx.repo.index("etcd").backups) == 5
    deleted = backup.prune(ctx, "etcd")
    assert [d.backup_id for d in deleted] == made[:2]
    assert [b.id for b in ctx.repo.index("etcd").backups] == made[2:]


def test_k3s_snapshot_is_the_newest_file_of_its_name(tmp_path: Path) -> None:
    older = tmp_path / "kosmos-x-node1-1700000000"
    newer = tmp_path / "kosmos-x-node1-1700000600"
    other = tmp_path / "etcd-snapshot-node1-1800000000"
    for path in (older, newer, other):
        path.write_bytes(b"x")
    os.utime(older, (time.time() - 600, time.time() - 600))
    assert k3s.pick(tmp_path, "kosmos-x") == newer
    with pytest.raises(NotFoundError, match="wrote no kosmos-y-"):
        k3s.pick(tmp_path, "kosmos-y")


def test_k3s_compressed_snapshots_are_refused_with_the_setting_to_change(tmp_path: Path) -> None:
    (tmp_path / "kosmos-z-node1-1700000000.zip").write_bytes(b"PK")
    with pytest.raises(EngineError, match="compressed by K3s") as caught:
        k3s.pick(tmp_path, "kosmos-z")
    assert "etcd-snapshot-compress" in caught.value.hint


def test_the_k3s_reset_is_stop_reset_start() -> None:
    assert [k3s.shown(c) for c in k3s.reset_commands("/snap/s.db")] == [
        "systemctl stop k3s",
        "k3s server --cluster-reset --cluster-reset-restore-path=/snap/s.db",
        "systemctl start k3s",
    ]


def test_restore_options_choose_one_target() -> None:
    with pytest.raises(UsageError, match="choose one of data_dir, k3s_reset and scratch"):
        EtcdRestoreOptions.parse({"data_dir": "/new", "k3s_reset": True})
    with pytest.raises(UsageError, match="peer_url"):
        EtcdRestoreOptions.parse({"data_dir": "/new", "peer_url": "x; rm -rf /"})
    with pytest.raises(UsageError, match="bogus"):
        EtcdRestoreOptions.parse({"bogus": "1"})
    assert EtcdRestoreOptions.parse({"data_dir": "/new"}).member == "default"


def test_compare_names_what_differs() -> None:
    key = SampledKey(key="/a", create_revision=2, mod_revision=5, version=2)
    expected = KeyFacts(count=3, sample=(key,))
    assert compare(expected, 3, {"/a": key}) == []
    moved = key.model_copy(update={"mod_revision": 9})
    assert compare(expected, 2, {"/a": moved}) == [
        "restored etcd holds 2 keys, the backup had 3",
        "key '/a' is at revision 9, expected 5",
    ]
    assert compare(expected, 3, {}) == ["key '/a' is missing"]
