"""With Redis unreachable, every command says so in one line with a hint, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.jobs import harness
from tests.services import free_port

pytestmark = pytest.mark.timeout(240)


def local_backup(config: Path) -> str:
    """A real backup made in this process (``--local``); its id."""
    made = harness.run_cli(config, "backup", "postgres", "--local", "--json")
    assert made.returncode == 0, made.stderr
    return str(json.loads(made.stdout)["id"])


def test_with_redis_unreachable_every_command_says_so_without_a_traceback(
    tmp_path: Path,
    small_db: str,
) -> None:
    port = free_port()
    config = harness.write_config(
        tmp_path / "kosmos.yaml",
        storage={"url": f"file://{tmp_path}/store"},
        redis_url=f"redis://:hunter2@127.0.0.1:{port}/0",
        database=small_db,
    )
    local_backup(config)  # --local needs no Redis at all
    commands = [
        (("backup", "postgres"), True),
        (("verify", "postgres"), True),
        (("prune", "postgres", "--wait"), True),
        (("ops",), False),
        (("worker", "--burst"), False),
        (("scheduler", "--once"), False),
        (("dr", "status"), False),
        (("audit", "show"), False),
    ]
    for args, local in commands:
        result = harness.run_cli(config, *args, timeout=60)
        lines = result.stderr.splitlines()
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr and "hunter2" not in result.stderr, args
        assert len(lines) == 2, (args, result.stderr)
        # The audit and approval stores say what they could not do; all else names the URL.
        assert lines[0].startswith("error: Redis "), (args, lines[0])
        if args[0] != "audit":
            url = f"redis://:***@127.0.0.1:{port}/0"
            assert lines[0].startswith(f"error: Redis at {url} is unreachable: "), args
        assert lines[1].startswith("hint: "), args
        assert ("--local" in lines[1]) is local, (args, lines[1])
