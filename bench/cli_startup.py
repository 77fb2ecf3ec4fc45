"""CLI start-up: whole ``kosmos-backup`` processes against the 150 ms target (issue 14, 6).

Each command is timed as a user or PostgreSQL's archive_command sees it, start to exit,
medians of ``--runs`` with the commands alternating (one round runs each once, the order
turning every round), after one untimed warm-up of each:

- ``kosmos-backup --version``: click and the command table, nothing else;
- ``kosmos-backup status --json`` on the embedded defaults (a local store holding one backup
  of the ``postgres`` database, the PostgreSQL probe against the machine's server) with Redis
  on ``--redis-db``, and no service running: the full CLI;
- the same state served by a running ``kosmos-backup up`` (its own home): ``status --json``
  and ``status`` (the board, to a pipe) answered over `up`'s status socket
  (bot.status_socket). The bench checks that they were: a run that loaded pydantic fails it;
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
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: python3 bench/cli_startup.py
    sys.path.insert(0, str(ROOT))

from bot.status_socket import address, socket_path  # noqa: E402
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
SERVED = ("status --json (up running)", "status (up running)")
OURS = ("--version", "status --json", *SERVED, "wal-push (stored)")
TARGETED = (*SERVED, "wal-push (stored)")
UP_READY_SECONDS = 120.0
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
        with _up(kosmos, commands["status (up running)"][1]):
            _check_served(commands["status --json (up running)"])
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
    one_db = {
        "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "KOSMOS__COMPONENTS__POSTGRES__DATABASES": "[postgres]",
    }
    demo = clean | one_db | {"HOME": str(tmp / "home")}
    served = clean | one_db | {"HOME": str(tmp / "served")}
    tmp.mkdir()
    for env in (demo, served):  # one good backup: the state has one, nothing is due
        env.pop("XDG_STATE_HOME", None)
        _run("backup", [kosmos, "backup", "postgres", "--local", "--json"], env)
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
        "status --json (up running)": ([kosmos, "status", "--json"], served),
        "status (up running)": ([kosmos, "status"], served),
        "wal-push (stored)": (push, clean),
        "python -c pass": ([sys.executable, "-c", "pass"], clean),
        "barman-cloud-wal-archive --help": ([barman, "--help"], clean),
    }


@contextlib.contextmanager
def _up(kosmos: str, env: dict[str, str]) -> Iterator[None]:
    """`kosmos-backup up` in ``env``'s home, once its status socket answers; /quit after."""
    log = Path(env["HOME"]) / "up.log"
    with open(log, "wb") as out:
        argv = [kosmos, "up"]
        up = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=out, env=env)
    try:
        deadline = time.monotonic() + UP_READY_SECONDS
        while not _listening(socket_path(env)):
            if up.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"kosmos-backup up did not start its status socket: {log.read_text()}")
            time.sleep(0.1)
        yield
    finally:
        assert up.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            up.stdin.write(b"/quit\n")
            up.stdin.close()
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn, contextlib.suppress(OSError):
        with address(path) as where:
            conn.connect(where)
        return True
    return False


def _check_served(command: tuple[list[str], dict[str, str]]) -> None:
    """Exit unless `up` answered: the CLI's stack (pydantic) is not imported then."""
    argv, env = command
    done = subprocess.run(argv, env=env | {"PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True)
    if done.returncode != 0 or b"pydantic" in done.stderr:
        sys.exit("status was not answered by `up` (the full CLI ran): see bot/status_socket.py")


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
