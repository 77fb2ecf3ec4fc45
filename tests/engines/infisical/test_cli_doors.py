"""The secrets component through the CLI: config check, backup, list, verify; in this process
(``--local``) and through a real worker, with and without ``--wait``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.infisical import FakeInfisical
from tests.jobs import harness
from workers.config_loader import load_settings
from workers.core.manifest import VerificationState

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def cli_config(
    tmp_path: Path,
    secrets_config: dict[str, Any],
    infisical: FakeInfisical,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """The secrets config as a file on the test Redis; credentials in the environment."""
    monkeypatch.setenv("INFISICAL_CLIENT_ID", infisical.client_id)
    monkeypatch.setenv("INFISICAL_CLIENT_SECRET", infisical.client_secret)
    config = {**secrets_config, "redis": {"url": redis_url, "key_prefix": "kosmos-secrets-test"}}
    path = tmp_path / "kosmos.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_config_check_refuses_secrets_without_recipients(cli_config: Path) -> None:
    config = yaml.safe_load(cli_config.read_text())
    config["encryption"] = {}
    cli_config.write_text(yaml.safe_dump(config))
    checked = harness.run_cli(cli_config, "config", "check")
    assert checked.returncode == 2
    assert "encryption.recipients" in checked.stdout + checked.stderr
    refused = harness.run_cli(cli_config, "backup", "secrets", "--local")
    assert refused.returncode == 2, refused.stderr
    assert "always age-encrypted" in refused.stderr


def test_backup_list_and_verify_locally(cli_config: Path) -> None:
    made = harness.run_cli(cli_config, "backup", "secrets", "--local", "--json")
    assert made.returncode == 0, made.stderr
    backup_id = json.loads(made.stdout)["id"]
    listed = harness.run_cli(cli_config, "list", "secrets", "--json")
    assert [b["id"] for b in json.loads(listed.stdout)["backups"]] == [backup_id]
    deep = harness.run_cli(cli_config, "verify", "secrets", "latest", "--deep", "--local")
    assert deep.returncode == 0, deep.stderr
    assert "4 secrets in 2 environments match the manifest" in deep.stdout + deep.stderr


def test_backup_and_verify_through_a_worker(cli_config: Path, tmp_path: Path) -> None:
    settings = load_settings(str(cli_config))
    with harness.running(harness.worker(cli_config, tmp_path)):
        waited = harness.run_cli(cli_config, "backup", "secrets", "--wait")
        assert waited.returncode == 0, waited.stderr
        [summary] = harness.repository(settings).index("secrets").backups
        queued = harness.run_cli(cli_config, "verify", "secrets", summary.id, "--deep")
        assert queued.returncode == 0, queued.stderr
        op_id = queued.stdout.strip()
        ended = harness.wait_until(harness.ended(settings, op_id), 60, "the verify to end")
    assert ended["state"] == "finished", ended
    record = harness.repository(settings).manifest(summary.id).verification
    assert record is not None and record.state == VerificationState.PASSED and record.deep
