"""The etcd engine through the generic CLI: backup, list and verify --deep, here and on a worker."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import EXAMPLE_CONFIG, REDIS_DB
from tests.engines.etcd.etcd_server import EtcdServer
from tests.scenarios.bot_process import running_worker


def cli(*args: str, env: dict[str, str], timeout: float = 180) -> dict:  # type: ignore[type-arg]
    """``kosmos-backup --config examples/kosmos-backup.yaml ARGS --json``, parsed; must succeed."""
    done = subprocess.run(
        ["kosmos-backup", "--config", str(EXAMPLE_CONFIG), *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    # --wait prints the queued operation first, then its outcome: the last line counts.
    return json.loads(done.stdout.strip().splitlines()[-1] if "--wait" in args else done.stdout)  # type: ignore[no-any-return]


def environment(etcd: EtcdServer, tmp_path: Path) -> dict[str, str]:
    """The CLI's and the worker's environment: a local store, this etcd, a test Redis db."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
    env |= {
        "KOSMOS__STORAGE__URL": f"file://{tmp_path}/store",
        "KOSMOS__REDIS__URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "KOSMOS__COMPONENTS__ETCD__ENDPOINTS": f"[{etcd.url}]",
        "KOSMOS__COMPONENTS__ETCD__SNAPSHOT_DIR": str(tmp_path / "snapshots"),
        "KOSMOS__JOBS__RETRY_INTERVALS": "[]",
    }
    return env


def test_backup_list_and_deep_verify_in_this_process(
    etcd: EtcdServer, tmp_path: Path, redis_url: str
) -> None:
    etcd.put_many((f"/registry/k{i}", "v") for i in range(100))
    env = environment(etcd, tmp_path)
    made = cli("backup", "etcd", "--local", env=env)
    assert made["kind"] == "etcd-snapshot" and made["details"]["keys"]["count"] == 100
    listed = cli("list", "etcd", env=env)["backups"]
    assert [b["id"] for b in listed] == [made["id"]]
    checked = cli("verify", "etcd", made["id"], "--deep", "--local", env=env)
    assert checked["verification"]["state"] == "passed" and checked["verification"]["deep"]


def test_backup_and_deep_verify_wait_for_the_etcd_worker(
    etcd: EtcdServer, tmp_path: Path, redis_url: str
) -> None:
    etcd.put_many((f"/registry/k{i}", "v") for i in range(100))
    env = environment(etcd, tmp_path)
    with running_worker(env, tmp_path / "worker.log", "kosmos-etcd"):
        done = cli("backup", "etcd", "--wait", env=env)
        assert done["state"] == "finished", done
        backup_id = done["summary"]["backup_id"]
        checked = cli("verify", "etcd", "latest", "--deep", "--wait", env=env)
        assert checked["state"] == "finished", checked
    listed = cli("list", "etcd", env=env)["backups"]
    assert [b["id"] for b in listed] == [backup_id]
    assert listed[0]["verification"]["state"] == "passed"
