"""Fixtures of the etcd engine's tests: a real etcd on loopback and a Context pointing at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.engines.etcd.etcd_server import EtcdServer, Tls
from workers.context import Context
from workers.core.config import Settings


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """A fresh, empty etcd (plain HTTP) on free loopback ports."""
    root = tmp_path / "etcd"
    root.mkdir()
    server = EtcdServer(root).start()
    yield server
    server.stop()


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    """A self-signed CA with server and client certificates."""
    return Tls.make(tmp_path / "tls")


@pytest.fixture
def etcd_tls(tmp_path: Path, tls: Tls) -> Iterator[EtcdServer]:
    """An etcd that serves TLS and requires a client certificate signed by ``tls``'s CA."""
    root = tmp_path / "etcd-tls"
    root.mkdir()
    server = EtcdServer(root, tls).start()
    yield server
    server.stop()


@pytest.fixture
def etcd_context(make_settings: Callable[..., Settings], tmp_path: Path) -> Callable[..., Context]:
    """``etcd_context(server, **overrides)``: a Context whose etcd component is ``server``."""

    def build(server: EtcdServer, env: dict[str, str] | None = None, **dotted: str) -> Context:
        values = {
            "components.etcd.endpoints": f"[{server.url}]",
            "components.etcd.snapshot_dir": str(tmp_path / "snapshots"),
        }
        if server.tls:
            values |= {
                "components.etcd.cacert": str(server.tls.ca),
                "components.etcd.cert": str(server.tls.client_cert),
                "components.etcd.key": str(server.tls.client_key),
            }
        settings = make_settings(env=env, **{**values, **dotted})
        return Context(settings)

    return build
