"""The issue's 'done when' checks, through the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import EXAMPLE_CONFIG
from workers.engines import has_engine


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``kosmos-backup`` as a user would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")}
    full_env.update(env or {})
    return subprocess.run(
        ["kosmos-backup", *args], capture_output=True, text=True, env=full_env, timeout=60
    )


def test_example_config_checks_ok() -> None:
    result = run_cli("--config", str(EXAMPLE_CONFIG), "config", "check")
    assert result.returncode == 0, result.stderr
    assert "5 components" in result.stdout


def test_status_json_on_empty_store_lists_five_components_breaching_the_built_ones(
    tmp_path: Path,
) -> None:
    result = run_cli(
        "--config",
        str(EXAMPLE_CONFIG),
        "status",
        "--json",
        env={"KOSMOS__STORAGE__URL": f"file://{tmp_path}"},
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    names = [c["name"] for c in doc["components"]]
    assert names == ["postgres", "minio", "etcd", "kubernetes", "secrets"]
    for component in doc["components"]:
        assert component["last_backup"] is None
        # A kind with an engine that is on breaches at once (nothing backed up yet); one that
        # is off (secrets ships disabled: no recipients) or not built yet never does.
        built = has_engine(component["kind"])
        assert component["rpo_breached"] is (built and component["enabled"])
        assert component["engine"] == ("built" if built else "not built")
