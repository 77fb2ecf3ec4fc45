"""Failures of the etcd engine: etcd down, a kill mid-upload, TLS settings passed through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.engines.etcd.etcd_server import EtcdServer
from tests.storage.stores import Inspector
from workers.context import Context
from workers.core.errors import EngineError
from workers.core.manifest import MANIFEST_NAME
from workers.engines.etcd import backup, etcdctl, health
from workers.engines.etcd.verify import verify


def test_etcd_down_is_a_clear_error_and_no_manifest(
    etcd: EtcdServer, etcd_context: Callable[..., Context]
) -> None:
    ctx = etcd_context(etcd)
    etcd.stop()
    with pytest.raises(EngineError) as caught:
        backup.backup(ctx, "etcd")
    assert caught.value.message.startswith(f"etcd is unreachable: {etcd.url}: ")
    assert "endpoints" in caught.value.hint
    assert ctx.repo.index("etcd").backups == []
    assert [k for k in Inspector(ctx.repo.store).raw_keys() if k.startswith("etcd/")] == []
    shown = health.unreachable(ctx, "etcd")
    assert shown is not None and shown.startswith(f"unreachable at {etcd.url} (")


def test_a_kill_mid_upload_leaves_nothing_visible(
    etcd: EtcdServer,
    etcd_context: Callable[..., Context],
    s3_env: dict[str, str],
) -> None:
    for batch in range(12):  # about 12 MiB of values that do not compress
        etcd.put_many((f"/big/{batch}-{i}", os.urandom(512).hex()) for i in range(1000))
    ctx = etcd_context(etcd, env=s3_env)
    environ = {
        **s3_env,
        "KOSMOS__COMPONENTS__ETCD__ENDPOINTS": f"[{etcd.url}]",
        "KOSMOS__COMPRESSION__LEVEL": "1",
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.engines.etcd.backup_process", json.dumps(environ), "8"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "uploading"
    finally:
        child.kill()
        child.wait()
    keys = Inspector(ctx.repo.store).raw_keys()
    assert not any(k.endswith(MANIFEST_NAME) and "/etcd/" in f"/{k}" for k in keys)
    assert ctx.repo.index("etcd").backups == []
    assert ctx.repo.rebuild_index("etcd").backups == []


def test_tls_settings_reach_etcdctl(
    etcd_tls: EtcdServer, etcd_context: Callable[..., Context]
) -> None:
    etcd_tls.put_many((f"secret-{i}", "x") for i in range(20))
    ctx = etcd_context(etcd_tls)
    manifest = backup.backup(ctx, "etcd")
    assert backup.facts_of(manifest).keys is not None
    assert manifest.source["endpoint"] == etcd_tls.url
    record = verify(ctx, "etcd", manifest).verification
    assert record is not None and record.state == "passed"


def test_without_the_client_certificate_tls_etcd_refuses(
    etcd_tls: EtcdServer, etcd_context: Callable[..., Context]
) -> None:
    ctx = etcd_context(etcd_tls, **{"components.etcd.cert": "", "components.etcd.key": ""})
    with pytest.raises(EngineError, match="etcd is unreachable"):
        backup.backup(ctx, "etcd")
    assert ctx.repo.index("etcd").backups == []


def test_the_client_passes_each_tls_file(tmp_path: Path) -> None:
    client = etcdctl.Client(("https://127.0.0.1:1",), "/ca.crt", "/c.crt", "/c.key")
    argv = client.argv("endpoint", "status")
    assert argv[0] == "etcdctl"
    assert {"--cacert=/ca.crt", "--cert=/c.crt", "--key=/c.key"} <= set(argv)
    assert argv[-2:] == ["endpoint", "status"]
