"""etcd's contract-test fixture: a real etcd with keys; restores go to a new data dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engines.case import ContractCase
from tests.engines.etcd.etcd_server import EtcdServer
from tests.services import free_port
from tests.storage.backups import Clock
from workers.context import Context
from workers.core.config import Settings
from workers.engines.etcd.options import EtcdRestoreOptions

KEYS = 200


@pytest.fixture
def etcd_contract_case(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> Iterator[ContractCase]:
    """200 keys in a real etcd, snapshotted to a local store; restored into a new data dir."""
    (tmp_path / "etcd").mkdir()
    server = EtcdServer(tmp_path / "etcd").start()
    server.put_many((f"/registry/contract/k{i:03d}", f"value-{i}") for i in range(KEYS))
    settings = make_settings(
        **{
            "components.etcd.endpoints": f"[{server.url}]",
            "components.etcd.snapshot_dir": str(tmp_path / "snapshots"),
            "components.etcd.keep_last": "1",
        }
    )
    clock = Clock()
    data_dir = tmp_path / "restored"
    peer_port = free_port()

    def check_restored(result: Any) -> None:
        assert result.checksums_matched is True
        assert result.data_dir == str(data_dir)
        back = EtcdServer(tmp_path, data_dir=data_dir, name="back", peer_port=peer_port)
        back.start()
        try:
            assert back.count() == KEYS
            assert back.ctl("get", "/registry/contract/k123", "--print-value-only").strip() == (
                "value-123"
            )
        finally:
            back.stop()

    try:
        yield ContractCase(
            ctx=Context(settings, clock=clock),
            clock=clock,
            component="etcd",
            restore_options=EtcdRestoreOptions(
                data_dir=str(data_dir), member="back", peer_url=f"http://127.0.0.1:{peer_port}"
            ),
            check_restored=check_restored,
        )
    finally:
        server.stop()
