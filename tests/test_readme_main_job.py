"""The README's main-job line, pasted as a person would: a fresh clone, Debian's python3.

The line is read from README.md's Set up section, so the README and this test never disagree.
It runs with ``/usr/bin`` first on PATH (a PEP 668 "externally managed" python3 on Debian 12),
HOME in a temporary folder and no KOSMOS_* variables; the console gets ``/backup status`` and
``/quit`` on stdin. Slow (a virtual environment is installed): the one such test.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def main_job_line() -> str:
    """The one shell line of the first ``sh`` block in README.md's Set up section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "README's Set up section has no sh block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, f"the main job must be one line to paste: {lines}"
    return lines[0]


def pip_env() -> dict[str, str]:
    """The machine's pip cache and user config, which a temporary HOME would hide."""
    home = Path.home()
    env = {"PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(home / ".cache" / "pip"))}
    for config in (home / ".config" / "pip" / "pip.conf", home / ".pip" / "pip.conf"):
        if config.is_file():
            env["PIP_CONFIG_FILE"] = str(config)
            break
    return env


@pytest.mark.timeout(1200)
def test_the_readme_main_job_line_runs_in_a_fresh_clone_with_debians_python3(
    tmp_path: Path,
) -> None:
    line = main_job_line()
    assert line.startswith("python3 ") and "kosmos-backup up" in line
    assert (
        Path("/usr/lib/python3.11/EXTERNALLY-MANAGED").exists()
        or not Path("/usr/lib/python3.11").exists()
    )
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KOSMOS", "SLACK_", "VIRTUAL_ENV", "PYTHON", "XDG_"))
    }
    env.update(pip_env())
    env.update({"HOME": str(home), "PATH": "/usr/bin:/bin:" + env.get("PATH", "")})
    result = subprocess.run(
        ["sh", "-c", line],
        cwd=clone,
        input="/backup status\n/quit\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=1100,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    out = result.stdout
    assert re.search(r"^Redis: ", out, re.MULTILINE), out
    assert "kosmos-backup console — you are alice (operators)" in out
    assert "Backups  (RPO 1h, RTO 4h)" in out and "│ postgres" in out  # 80 columns: wrapped
    assert "Traceback" not in out + result.stderr
    assert (clone / ".venv" / "bin" / "kosmos-backup").exists()
