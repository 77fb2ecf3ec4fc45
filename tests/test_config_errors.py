"""A broken config names the key, exits 2 and prints no traceback, through the console script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLE_CONFIG


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``kosmos-backup`` as a user would, with only the given KOSMOS variables."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
    full_env.update(env or {})
    return subprocess.run(
        ["kosmos-backup", *args], capture_output=True, text=True, env=full_env, timeout=60
    )


def example() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(EXAMPLE_CONFIG.read_text())  # type: ignore[no-any-return]


def write_config(tmp_path: Path, data: dict) -> Path:  # type: ignore[type-arg]
    path = tmp_path / "kosmos-backup.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def broken(change: str) -> dict:  # type: ignore[type-arg]
    data = example()
    if change == "bad duration":
        data["components"]["postgres"]["retention"] = "30x"
    elif change == "no bucket":
        data["storage"]["url"] = "s3:///kosmos"
    elif change == "unknown key":
        data["storage"]["colour"] = "blue"
    elif change == "missing required":
        del data["components"]["minio"]["frequency"]
    elif change == "bad kind":
        data["components"]["secrets"]["kind"] = "vault"
    elif change == "no kind":
        del data["components"]["etcd"]["kind"]
    return data


@pytest.mark.parametrize(
    ("change", "first_line"),
    [
        ("bad duration", "error: components.postgres.retention: '30x' is not a duration"),
        ("no bucket", "error: storage.url: 's3:///kosmos' has no bucket"),
        ("unknown key", "error: storage.colour: is not a known setting"),
        ("missing required", "error: components.minio.frequency: is required"),
        ("bad kind", "error: components.secrets: kind 'vault' is unknown"),
        ("no kind", "error: components.etcd: needs a 'kind'"),
    ],
)
def test_broken_config_names_the_key_and_exits_2(
    tmp_path: Path, change: str, first_line: str
) -> None:
    path = write_config(tmp_path, broken(change))
    result = run_cli("--config", str(path), "config", "check")
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert lines[0].startswith(first_line), result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) <= 2  # the message, and at most a hint naming the file
    assert result.stdout == ""


def test_the_same_error_from_an_environment_override(tmp_path: Path) -> None:
    result = run_cli(
        "--config",
        str(EXAMPLE_CONFIG),
        "status",
        env={"KOSMOS__COMPONENTS__POSTGRES__RETENTION": "30x", "KOSMOS__STORAGE__URL": "s3://"},
    )
    assert result.returncode == 2
    # Problems are reported in the order of the settings tree: storage comes first.
    assert result.stderr.startswith("error: storage.url: 's3://' has no bucket")
    assert result.stderr.splitlines()[0].endswith("(and 1 more problem)")
    assert "Traceback" not in result.stderr


def test_a_bad_kind_does_not_echo_the_component_secrets(tmp_path: Path) -> None:
    data = example()
    data["components"]["postgres"]["kind"] = "mysql"
    data["components"]["postgres"]["dsn"] = "host=db password=hunter2-secret"
    result = run_cli("--config", str(write_config(tmp_path, data)), "config", "check")
    assert result.returncode == 2
    assert "kind 'mysql' is unknown" in result.stderr
    assert "hunter2" not in result.stderr


def test_a_wrongly_typed_secret_is_not_echoed(tmp_path: Path) -> None:
    data = example()
    data["slack"]["bot_token"] = ["xoxb-top-secret"]
    result = run_cli("--config", str(write_config(tmp_path, data)), "config", "check")
    assert result.returncode == 2
    assert result.stderr.startswith("error: slack.bot_token:")
    assert "xoxb-top-secret" not in result.stderr


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("storage: [unclosed\n", "line 2: not valid YAML"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        (
            "storage: {url: 'file:///x'}\ncomponents:\n  pg: {kind: postgres, frequency: 1h, "
            "retention: 99999999999999d}\n",
            "components.pg.retention: '99999999999999d' is too long",
        ),
    ],
)
def test_unreadable_files_are_config_errors(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = run_cli("--config", str(path), "config", "check")
    assert result.returncode == 2
    assert problem in result.stderr.splitlines()[0]
    assert "Traceback" not in result.stderr


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    result = run_cli("--config", str(tmp_path / "nope.yaml"), "status")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot read config {tmp_path / 'nope.yaml'}")


def test_the_config_path_may_come_from_the_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, broken("bad duration"))
    result = run_cli("config", "check", env={"KOSMOS_BACKUP_CONFIG": str(path)})
    assert result.returncode == 2
    assert "components.postgres.retention" in result.stderr


def test_missing_environment_variable_names_the_key(tmp_path: Path) -> None:
    text = EXAMPLE_CONFIG.read_text().replace("${OSS_ACCESS_KEY:-}", "${OSS_ACCESS_KEY}")
    path = tmp_path / "k.yaml"
    path.write_text(text)
    result = run_cli("--config", str(path), "config", "check")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        "error: storage.access_key_id: environment variable OSS_ACCESS_KEY is not set"
    )
    fixed = run_cli("--config", str(path), "config", "check", env={"OSS_ACCESS_KEY": "AKID"})
    assert fixed.returncode == 0, fixed.stderr


def test_example_config_checks_ok_and_secrets_stay_hidden(tmp_path: Path) -> None:
    secrets = {
        "OSS_ACCESS_KEY": "AKID-visible-nowhere",
        "OSS_SECRET_KEY": "oss-secret-value",
        "KOSMOS_PG_DSN": "host=db password=pg-secret-value",
        "INFISICAL_CLIENT_SECRET": "infisical-secret-value",
        "SLACK_BOT_TOKEN": "xoxb-secret-value",
        "SLACK_SIGNING_SECRET": "signing-secret-value",
    }
    check = run_cli("--config", str(EXAMPLE_CONFIG), "config", "check", env=secrets)
    assert check.returncode == 0, check.stderr
    assert check.stdout.splitlines()[0] == "config ok: storage s3://, 5 components"
    assert "postgres: postgres, every 1h, keep 30d, queue kosmos-default" in check.stdout
    status = run_cli(
        "--config",
        str(EXAMPLE_CONFIG),
        "status",
        "--json",
        env={**secrets, "KOSMOS__STORAGE__URL": f"file://{tmp_path}/store"},
    )
    assert status.returncode == 0, status.stderr
    assert len(json.loads(status.stdout)["components"]) == 5
    for output in (check.stdout, check.stderr, status.stdout, status.stderr):
        for value in secrets.values():
            assert value not in output
