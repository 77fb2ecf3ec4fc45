"""The console door for Kubernetes resources: run, list, verify and a restore request."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.conftest import EXAMPLE_CONFIG
from tests.fakes.velero import FakeVelero
from workers.context import Context
from workers.core.config import Settings
from workers.engines.velero import backups


def test_the_console_runs_lists_verifies_and_asks_to_restore_kubernetes(
    make_settings: Callable[..., Settings],
    kubeconfig: Path,
    velero: FakeVelero,
    redis_url: str,
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    ctx = Context(
        make_settings(
            storage_url=f"file://{store}",
            **{"components.kubernetes.kubeconfig": str(kubeconfig)},
        )
    )
    made = backups.backup(ctx, "kubernetes")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
    env.update(
        {
            "KOSMOS_BACKUP_CONFIG": str(EXAMPLE_CONFIG),
            "KOSMOS__REDIS__URL": redis_url,
            "KOSMOS__STORAGE__URL": f"file://{store}",
            "KOSMOS__COMPONENTS__KUBERNETES__KUBECONFIG": str(kubeconfig),
            "KOSMOS__APPROVAL_KEY": "velero-doors-approval-key-0123456789",
            "KOSMOS_BACKUP_STATE_DIR": str(tmp_path / "state"),
            "COLUMNS": "200",
        }
    )
    typed = (
        "/backup list kubernetes\n"
        "/backup run kubernetes\n"
        "/backup verify kubernetes latest\n"
        "/restore kubernetes latest --namespaces kosmos-agents -- the agents are gone\n"
        "/restore kubernetes latest --namespaces Kube_System -- no\n"
    )
    result = subprocess.run(
        ["kosmos-backup", "bot", "--console"],
        input=typed + "/quit\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert made.id in out  # listed
    assert len(re.findall(r"queued", out, re.IGNORECASE)) >= 2, out  # run and verify queued
    assert re.search(r"rr-\d{8}T\d{4}Z-[0-9a-f]{6}", out), out  # the request is open
    assert "kosmos-agents" in out
    # The bad one is refused, named (the chat's usage errors are lower-cased).
    assert "'kube_system' is not a namespace name" in out
    assert "Traceback" not in out + result.stderr
