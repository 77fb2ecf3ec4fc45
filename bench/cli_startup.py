"""CLI start-up: whole ``kosmos-backup`` processes against the 150 ms target (issue 14, 6).

Each command is timed as a user or PostgreSQL's archive_command sees it, start to exit,
medians of ``--runs`` with the commands alternating (one round runs each once, the order
turning every round), after one untimed warm-up of each:

- ``kosmos-backup --version``: click and the command table, nothing else;
- ``kosmos-backup status --json`` on the embedded defaults (a fresh local store, the
  PostgreSQL probe against the machine's server) with Redis on ``--redis-db``;
- ``kosmos-backup wal-push`` of a timeline history file already in the archive (moto S3):
  the synchronous path's cheapest real call, one refused conditional PUT and one GET;
- the peers: ``python -c pass`` (the interpreter's own floor) and
  ``barman-cloud-wal-archive --help`` (the peer archiver's start-up).

``--baseline PATH`` times another build's ``kosmos-backup`` (say, main's venv) in the same
rounds, for a before/after of the same three commands.

Byte code is cached as an installed package has it (pip compiles on install): the
children run without PYTHONDONTWRITEBYTECODE and with a scratch PYTHONPYCACHEPREFIX, so the
warm-up compiles every module once and no source tree is written to.

Target: ``status`` and ``wal-push`` <= 150 ms. On a busy machine every figure grows, the
floor too: the ratio to ``python -c pass`` travels better than the milliseconds. ::

    python3 bench/cli_startup.py [--runs 10] [--redis-db 15] [--baseline PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: python3 bench/cli_startup.py
    sys.path.insert(0, str(ROOT))

from tests.conftest import s3_client  # noqa: E402
from tests.services import moto_server  # noqa: E402

TARGET = 0.150
BUCKET = "kosmos-bench-startup"
HISTORY = "00000002.history"
S3_CONFIG = """\
storage:
  url: s3://{bucket}/kosmos
  endpoint_url: {endpoint}
  region: us-east-1
  access_key_id: bench
  secret_access_key: bench
  conditional_writes: true
components:
  postgres:
    kind: postgres
    frequency: 1h
    retention: 1d
    server_name: startup
"""
OURS = ("--version", "status --json", "wal-push (stored)")
TARGETED = ("status --json", "wal-push (stored)")
PEERS = ("python -c pass", "barman-cloud-wal-archive --help")


def main() -> None:
    """Time every command, alternating, and print medians with the ratio to the target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--redis-db", type=int, default=15)
    parser.add_argument("--baseline", help="another build's kosmos-backup, timed alongside")
    args = parser.parse_args()
    kosmos = shutil.which("kosmos-backup") or sys.exit("kosmos-backup is not on PATH")
    barman = shutil.which("barman-cloud-wal-archive") or sys.exit("barman-cloud is not installed")
    with moto_server() as s3, tempfile.TemporaryDirectory(prefix="kosmos-bench-cli-") as tmp:
        s3_client(s3.url).create_bucket(Bucket=BUCKET)
        work = Path(tmp)
        commands = _commands(work / "ours", kosmos, barman, s3.url, args.redis_db)
        if args.baseline:
            before = _commands(work / "baseline", args.baseline, barman, s3.url, args.redis_db)
            commands |= {f"{name} [baseline]": before[name] for name in OURS}
        for name, (argv, env) in commands.items():  # warm-up: .pyc files, the demo key
            _run(name, argv, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        names = list(commands)
        for run in range(args.runs):
            turn = run % len(names)
            for name in names[turn:] + names[:turn]:
                times[name].append(_run(name, *commands[name]))
        _report(times)


def _commands(
    tmp: Path, kosmos: str, barman: str, endpoint: str, redis_db: int
) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Every timed command: its argv and environment (no KOSMOS_* of the caller's)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")}
    clean.pop("PYTHONDONTWRITEBYTECODE", None)
    clean["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    demo = clean | {"HOME": str(tmp / "home"), "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}"}
    demo.pop("XDG_STATE_HOME", None)
    tmp.mkdir()
    config = tmp / "s3.yaml"
    config.write_text(S3_CONFIG.format(bucket=BUCKET, endpoint=endpoint))
    history = tmp / "pg_wal" / HISTORY
    history.parent.mkdir()
    history.write_text("1\t0/3000000\tno recovery target specified\n")
    push = [kosmos, "--config", str(config), "wal-push", str(history)]
    _run("wal-push (first)", push, clean)  # stored once: the timed pushes find it there
    return {
        "--version": ([kosmos, "--version"], clean),
        "status --json": ([kosmos, "status", "--json"], demo),
        "wal-push (stored)": (push, clean),
        "python -c pass": ([sys.executable, "-c", "pass"], clean),
        "barman-cloud-wal-archive --help": ([barman, "--help"], clean),
    }


def _run(name: str, argv: list[str], env: dict[str, str]) -> float:
    """Seconds one whole process took; exit unless it succeeded."""
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{name} failed ({done.returncode}): {done.stderr[-1500:]}")
    return seconds


def _report(times: dict[str, list[float]]) -> None:
    load = os.getloadavg()
    runs = len(times["--version"])
    floor = statistics.median(times["python -c pass"])
    print(f"\nCLI start-up, {runs} runs, medians [min-max]; load {load[0]:.1f} {load[1]:.1f}")
    baseline = [f"{name} [baseline]" for name in OURS if f"{name} [baseline]" in times]
    for name in (*OURS, *baseline, *PEERS):
        median = statistics.median(times[name])
        spread = f"[{min(times[name]) * 1000:.0f}-{max(times[name]) * 1000:.0f}]"
        line = f"  {name:<40} {median * 1000:6.0f} ms {spread:<12} {median / floor:5.1f}x python"
        if name.split(" [")[0] in TARGETED:
            verdict = "ok" if median <= TARGET else "OVER"
            line += f"  {median / TARGET:4.2f}x the {TARGET * 1000:.0f} ms target: {verdict}"
        if f"{name} [baseline]" in times:
            line += f"  {median / statistics.median(times[f'{name} [baseline]']):4.2f}x baseline"
        print(line)


if __name__ == "__main__":
    main()
