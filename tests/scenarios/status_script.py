"""The console script run as a whole process, reporting which modules it loaded.

``kosmos-backup status`` answered by `up` must not load the CLI's stack (pydantic, redis,
botocore); when it falls back, the CLI's stack is there. The modules say which path ran.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPORTING = """
import json, sys
report = sys.argv[1]
sys.argv = ["kosmos-backup", *sys.argv[2:]]
from bot.launch import main
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
sys.stdout.flush()
with open(report, "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
sys.exit(code)
"""
FULL = "import sys; sys.argv[0] = 'kosmos-backup'; from bot.cli import main; main()"
HEAVY = ("pydantic", "redis", "botocore", "boto3", "psycopg", "click", "rich", "rq")
"""What the lean path must not load: the CLI's stack."""


@dataclass(frozen=True)
class Run:
    """One whole process: its output, exit status and the top-level packages it loaded."""

    stdout: str
    stderr: str
    code: int
    packages: frozenset[str]

    @property
    def lean(self) -> bool:
        """Answered without the CLI's stack (by `up`'s status socket)."""
        return not self.packages & set(HEAVY)


def console_script(env: dict[str, str], scratch: Path, *args: str, cwd: Path | None = None) -> Run:
    """``kosmos-backup ARGS`` through the console script's entry point (bot.launch.main)."""
    report = scratch / "modules.json"
    report.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", REPORTING, str(report), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    loaded = json.loads(report.read_text())
    assert loaded["code"] == done.returncode
    packages = frozenset(name.partition(".")[0] for name in loaded["modules"])
    return Run(done.stdout, done.stderr, done.returncode, packages)


def full_cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> Run:
    """``kosmos-backup ARGS`` through bot.cli.main: the full CLI, never the lean path."""
    done = subprocess.run(
        [sys.executable, "-c", FULL, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Run(done.stdout, done.stderr, done.returncode, frozenset())
