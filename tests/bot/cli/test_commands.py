"""The CLI's command table: it agrees with the commands, and a command loads only its module.

``bot.cli.COMMANDS`` names each command's module so that ``kosmos-backup wal-push`` (once per
WAL segment) and ``status`` (polled) import what they use. A command missing from the table
would vanish from the CLI; one listed under the wrong module would fail when run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import click

from bot.cli import COMMANDS, cli
from tests.conftest import REDIS_DB

ROOT = Path(__file__).resolve().parents[3]
CLI_MODULES = sorted(
    f"bot.cli.{p.stem}" for p in (ROOT / "bot" / "cli").glob("*.py") if not p.stem.startswith("_")
)
"""Every module of bot/cli/ (not the package, nor ``__main__``, which runs the CLI)."""


def modules_loaded_by(argv: list[str], env: dict[str, str]) -> tuple[int, set[str]]:
    """Exit status and every module in sys.modules after ``kosmos-backup ARGV`` ran."""
    probe = (
        "import json, sys\n"
        "from bot.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean | env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    return found["code"], set(found["modules"])


def test_every_command_in_the_table_is_in_its_module_under_that_name() -> None:
    for name, module in COMMANDS.items():
        names = [command.name for command in import_module(module).commands]
        assert name in names, f"{name} is not in {module}.commands"


def test_every_command_of_every_module_is_in_the_table() -> None:
    listed = {(name, module) for name, module in COMMANDS.items()}
    found = {
        (command.name, module)
        for module in CLI_MODULES
        for command in getattr(import_module(module), "commands", [])
    }
    assert found == listed


def test_help_lists_every_command_with_its_short_help() -> None:
    result = subprocess.run(
        ["kosmos-backup", "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    listing = result.stdout.split("Commands:", 1)[1]
    for name in COMMANDS:
        command = cli.get_command(click.Context(cli), name)
        assert command is not None
        short = command.get_short_help_str(limit=20).removesuffix("...")
        line = next((ln for ln in listing.splitlines() if ln.split()[:1] == [name]), None)
        assert line is not None, f"{name} missing from --help"
        assert short.split()[0] in line


def test_an_unknown_command_is_refused_as_click_refuses_it() -> None:
    result = subprocess.run(
        ["kosmos-backup", "stauts"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 2
    assert "No such command 'stauts'" in result.stderr


def test_version_loads_no_command_module() -> None:
    code, modules = modules_loaded_by(["--version"], {})
    assert code == 0
    assert {m for m in modules if m.startswith("bot.cli.")} == set()


def test_wal_push_loads_its_own_module_and_engine_only(tmp_path: Path) -> None:
    # Refused before any storage is touched (not a WAL name): the imports are the command's.
    segment = tmp_path / "not-a-wal-file"
    segment.write_text("x")
    code, modules = modules_loaded_by(["wal-push", str(segment)], {"HOME": str(tmp_path)})
    assert code == 2
    assert {m for m in modules if m.startswith("bot.cli.")} == {"bot.cli.options", "bot.cli.wal"}
    engines = {m.split(".")[2] for m in modules if m.startswith("workers.engines.")}
    assert engines == {"postgres"}
    assert not {"rq", "redis", "structlog", "rich", "bot.handlers", "workers.queues"} & modules


def test_status_json_loads_neither_the_other_commands_nor_the_runbook_flow(
    tmp_path: Path,
) -> None:
    env = {"HOME": str(tmp_path), "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}"}
    code, modules = modules_loaded_by(["status", "--json"], env)
    assert code == 0
    assert {m for m in modules if m.startswith("bot.cli.")} == {
        "bot.cli.options",
        "bot.cli.catalog",
    }
    engines = {m.split(".")[2] for m in modules if m.startswith("workers.engines.")}
    assert engines == {"postgres"}  # the one enabled in the embedded defaults: its probe
    unused = {"rq", "structlog", "rich", "bot.handlers", "workers.queues", "workers.runbooks.flow"}
    assert not unused & modules
