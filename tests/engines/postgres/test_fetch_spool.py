"""restore_command's lean answer: a prefetched segment is delivered before the CLI loads.

Run through the console script, as PostgreSQL runs it. The config named does not exist, so
an exit 0 proves the CLI (which would fail to load it) never ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from workers.engines.postgres.fetch_spool import SPOOL, lean_fetch

SEGMENT = "000000010000000000000007"


def fetch(pg_wal: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``kosmos-backup --config <missing> wal-fetch ARGS`` with pg_wal as %p's directory."""
    kosmos = shutil.which("kosmos-backup")
    assert kosmos is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")}
    argv = [kosmos, "--config", str(pg_wal / "missing.yaml"), "wal-fetch", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture
def pg_wal(tmp_path: Path) -> Path:
    """A pg_wal directory whose spool holds one prefetched segment."""
    (tmp_path / SPOOL).mkdir()
    (tmp_path / SPOOL / SEGMENT).write_bytes(b"segment bytes")
    return tmp_path


def test_a_prefetched_segment_is_moved_to_the_destination_without_the_cli(pg_wal: Path) -> None:
    dest = pg_wal / "RECOVERYXLOG"

    done = fetch(pg_wal, "--component", "postgres", SEGMENT, str(dest))

    assert done.returncode == 0, done.stderr
    assert dest.read_bytes() == b"segment bytes"
    assert not (pg_wal / SPOOL / SEGMENT).exists()


def test_a_segment_not_in_the_spool_goes_to_the_cli(pg_wal: Path) -> None:
    dest = pg_wal / "RECOVERYXLOG"

    done = fetch(pg_wal, "000000010000000000000008", str(dest))

    # The full CLI ran: it could not load the config, said so, and delivered nothing.
    assert done.returncode != 0
    assert "missing.yaml" in done.stdout + done.stderr
    assert not dest.exists()
    assert (pg_wal / SPOOL / SEGMENT).exists()


def test_a_history_file_is_never_answered_from_the_spool(pg_wal: Path) -> None:
    (pg_wal / SPOOL / "00000002.history").write_text("1\t0/3000000\tbefore 2026\n")

    done = fetch(pg_wal, "00000002.history", str(pg_wal / "RECOVERYHISTORY"))

    assert done.returncode != 0
    assert not (pg_wal / "RECOVERYHISTORY").exists()


@pytest.mark.parametrize(
    "rest",
    [
        ["--help"],
        [SEGMENT],
        [SEGMENT, "dest", "extra"],
        ["--component"],
        ["--unknown", SEGMENT, "dest"],
        ["../" + SEGMENT, "dest"],
    ],
)
def test_arguments_it_does_not_know_are_left_to_the_cli(
    pg_wal: Path, rest: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(pg_wal)  # a relative "dest" would land here
    assert lean_fetch(["--config", "x.yaml", "wal-fetch", *rest]) is None
    assert (pg_wal / SPOOL / SEGMENT).exists()
