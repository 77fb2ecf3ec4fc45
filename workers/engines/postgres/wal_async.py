"""Asynchronous WAL archiving, in the manner of pgBackRest's archive-async.

A background archiver (``wal-archiver``) pushes every segment PostgreSQL marks ``.ready``
in ``pg_wal/archive_status``, several at once, ahead of PostgreSQL's calls, and leaves
``pg_wal/kosmos-archive/<name>.ok`` once the store has it (``.error`` when it failed).
``archive_command`` (``wal-push --async %p``) then only waits for that mark: exit 0 once
the segment is stored, non-zero otherwise, so PostgreSQL keeps the segment and retries.

Nothing here is lost in a crash: PostgreSQL keeps a segment until archive_command says 0,
and a new archiver (started by the next call) pushes whatever is still ``.ready``.
The spool sits inside pg_wal, which base backups leave out, and needs no configuration.
This module imports only the standard library at the top: archive_command starts fast.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

SPOOL = "kosmos-archive"
CONFIRM_WAIT = 50.0
"""How long archive_command waits for its segment before PostgreSQL hears a failure."""
POLL = 0.02
IDLE_EXIT = 30.0
"""The archiver exits once nothing has been ready this long; the next call restarts it."""
PARALLEL = 4
RETRY_AFTER = 1.0
FRESHNESS_EVERY = 5.0
LOCK = "archiver.lock"
PID = "archiver.pid"


def spool_of(pg_wal: Path) -> Path:
    """The archiver's directory of marks for a cluster's ``pg_wal``."""
    return pg_wal / SPOOL


def confirm(wal_path: str, launch: list[str], wait_seconds: float = CONFIRM_WAIT) -> int:
    """archive_command's side: 0 once the archiver has stored ``wal_path``'s file, else 1."""
    name = os.path.basename(wal_path)
    spool = spool_of(Path(wal_path).absolute().parent)
    spool.mkdir(exist_ok=True)
    ok, error = spool / f"{name}.ok", spool / f"{name}.error"
    deadline = time.monotonic() + wait_seconds
    started = False
    while True:
        if ok.exists():
            ok.unlink(missing_ok=True)  # acknowledged; PostgreSQL now marks the segment done
            return 0
        if error.exists():
            print(f"error: {name}: {_read(error)}", file=sys.stderr)
            error.unlink(missing_ok=True)
            return 1
        if not started:
            started = True
            try:
                ensure_running(spool, launch)
            except Exception as exc:  # PostgreSQL must hear a failure, never a traceback
                print(f"error: cannot start the WAL archiver: {exc}", file=sys.stderr)
                return 1
        if time.monotonic() > deadline:
            print(f"error: {name} not archived within {wait_seconds:.0f}s", file=sys.stderr)
            return 1
        time.sleep(POLL)  # the archiver is another process: its marks are files to look for


def ensure_running(spool: Path, launch: list[str]) -> None:
    """Start the archiver unless one holds the lock (a second one would just exit)."""
    with open(spool / LOCK, "a") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # running
        fcntl.flock(probe, fcntl.LOCK_UN)
    from workers import process  # light: the standard library and the error tree

    with open(spool / "archiver.log", "ab") as log:
        process.spawn(launch, log=log, new_session=True)


def launch_argv(argv: list[str], pg_wal: Path) -> list[str]:
    """The archiver's command line, from archive_command's own (``… wal-push --async %p``)."""
    at = argv.index("wal-push")
    component = _option(argv[at:], "--component")
    program = (
        [sys.argv[0]] if os.access(sys.argv[0], os.X_OK) else [sys.executable, "-m", "bot.launch"]
    )
    extra = ["--component", component] if component else []
    return [*program, *argv[:at], "wal-archiver", "--pg-wal", str(pg_wal), *extra]


def lean_push(argv: list[str]) -> int | None:
    """``wal-push --async`` without the CLI's imports; None when argv needs the full CLI."""
    at = argv.index("wal-push")
    rest = argv[at + 1 :]
    paths = [
        a
        for i, a in enumerate(rest)
        if not a.startswith("-") and rest[i - 1 : i] != ["--component"]
    ]
    if len(paths) != 1 or any(
        a not in ("--async", "--component") for a in rest if a.startswith("-")
    ):
        return None
    path = paths[0]
    if not os.path.isfile(path):
        return None  # the CLI explains it
    return confirm(path, launch_argv(argv, Path(path).absolute().parent))


def serve(uploader: Any, pg_wal: Path, on_stored: Any = None, idle_exit: float = IDLE_EXIT) -> None:
    """The archiver: push ``.ready`` segments in parallel, leave marks; return when idle."""
    spool = spool_of(pg_wal)
    spool.mkdir(exist_ok=True)
    with open(spool / LOCK, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another archiver serves this cluster
        (spool / PID).write_text(str(os.getpid()))
        with ThreadPoolExecutor(PARALLEL, thread_name_prefix="wal-archive") as pool:
            _loop(pool, uploader, pg_wal, spool, on_stored, idle_exit)


def _loop(
    pool: ThreadPoolExecutor,
    uploader: Any,
    pg_wal: Path,
    spool: Path,
    on_stored: Any,
    idle_exit: float,
) -> None:
    running: dict[str, Future[bool]] = {}
    failed_at: dict[str, float] = {}
    idle_since = time.monotonic()
    reported = 0.0
    newest: str | None = None
    while (pg_wal / "archive_status").is_dir():
        ready = _ready(pg_wal)
        _sweep(spool, ready)
        now = time.monotonic()
        for name in ready:
            if len(running) >= 2 * PARALLEL:
                break
            recent = now - failed_at.get(name, -RETRY_AFTER) < RETRY_AFTER
            if name not in running and not recent and not (spool / f"{name}.ok").exists():
                running[name] = pool.submit(_push_one, uploader, pg_wal, spool, name)
        if running:
            wait(list(running.values()), timeout=0.2, return_when=FIRST_COMPLETED)
        for name in [n for n, f in running.items() if f.done()]:
            if running.pop(name).result():
                newest = max(newest or name, name)
            else:
                failed_at[name] = time.monotonic()
        if ready or running:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > idle_exit:
            break
        else:
            time.sleep(0.1)  # nothing ready: look again shortly
        if on_stored and newest and time.monotonic() - reported > FRESHNESS_EVERY:
            on_stored(newest, str(pg_wal / newest))
            reported, newest = time.monotonic(), None
    if on_stored and newest:
        on_stored(newest, str(pg_wal / newest))


def _ready(pg_wal: Path) -> list[str]:
    """Names PostgreSQL waits to archive, oldest first."""
    with contextlib.suppress(FileNotFoundError):
        return sorted(p.name[: -len(".ready")] for p in (pg_wal / "archive_status").glob("*.ready"))
    return []


def _sweep(spool: Path, ready: list[str]) -> None:
    """Drop marks of segments PostgreSQL no longer waits for (a re-push after its ack)."""
    waiting = set(ready)
    for mark in spool.glob("*.ok"):
        if mark.name[: -len(".ok")] not in waiting:
            mark.unlink(missing_ok=True)


def _push_one(uploader: Any, pg_wal: Path, spool: Path, name: str) -> bool:
    """Push one file and leave its mark; True when it is stored."""
    try:
        uploader.push(str(pg_wal / name))
    except FileNotFoundError:
        return False  # PostgreSQL already archived and removed it
    except Exception as exc:  # any failure is reported to archive_command, not raised here
        _write(spool / f"{name}.error", getattr(exc, "message", None) or repr(exc))
        return False
    (spool / f"{name}.error").unlink(missing_ok=True)
    _write(spool / f"{name}.ok", "")
    return True


def _write(path: Path, text: str) -> None:
    """Write then rename: a reader never sees half a mark."""
    part = path.with_name(f".{path.name}.{os.getpid()}")
    part.write_text(text)
    os.replace(part, path)


def _read(path: Path) -> str:
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip() or "failed"
    return "failed"


def _option(argv: list[str], name: str) -> str | None:
    if name in argv[:-1]:
        return argv[argv.index(name) + 1]
    return None
