"""restore_command's spool of prefetched WAL, and the lean answer from it.

Two things fill ``pg_wal/kosmos-fetch-spool``: during a point-in-time restore, the
prefetcher (wal_prefetch), which runs ahead of replay for the whole restore; otherwise
each ``wal-fetch`` that reaches barman-cloud-wal-restore, which also downloads the next
segments (wal_shipping). ``lean_fetch`` answers from the spool by a rename, before the CLI
(click, pydantic, boto3) is imported or barman is started: milliseconds instead of
seconds a call. While a prefetcher runs, it also waits for a segment the prefetcher is
bringing, and answers "not archived" from the prefetcher's one listing (history files,
segments past the end): that is how PostgreSQL learns where the archive ends. Anything
else goes to the full CLI unchanged.

The spool holds only whole files: both writers rename a file into it once it is complete.
This module imports only the standard library, and of it only what starts in a few
milliseconds (no pathlib, no typing): the console script loads it by path (bot.launch),
once for every WAL segment replay asks for.
"""

from __future__ import annotations

import json
import os
import re
import time

SPOOL = "kosmos-fetch-spool"
SEGMENT_NAME = re.compile(r"[0-9A-F]{24}")
"""Only segments are prefetched (history and backup-label files are asked for by name)."""
HISTORY_NAME = re.compile(r"[0-9A-F]{8}\.history")
STATE = ".prefetch.json"
"""The running prefetcher's listing: ``start``, ``archived`` and ``queue`` names."""
ALIVE = ".prefetch.alive"
"""Touched by the prefetcher every few milliseconds while it runs."""
WANTED = ".prefetch.wanted"
"""The segment restore_command is waiting for: the prefetcher brings it next."""
ALIVE_WITHIN = 3.0
WAIT_FOR_SEGMENT = 60.0
POLL = 0.005
EXIT_NOT_ARCHIVED = 1


def spool_of(dest: str | os.PathLike[str]) -> str:
    """The spool beside a restore_command destination (``%p``, inside pg_wal)."""
    return os.path.join(os.path.dirname(os.path.abspath(dest)), SPOOL)


def lean_fetch(argv: list[str]) -> int | None:
    """``wal-fetch %f %p`` from the spool: 0 once delivered, None when the CLI must answer."""
    args = _name_and_dest(argv[argv.index("wal-fetch") + 1 :])
    if args is None:
        return None
    name, dest = args
    spool = spool_of(dest)
    if SEGMENT_NAME.fullmatch(name) and _deliver(spool, name, dest):
        return 0
    state = prefetch_state(spool)
    if state is None:
        return None  # not prefetched (or not movable): barman fetches it, and explains
    start, archived, queue = state
    if name in queue:
        return _await(spool, name, dest)
    if name in archived or not covered(name, start):
        return None
    return EXIT_NOT_ARCHIVED


def prefetch_state(spool: str) -> tuple[str, set[str], set[str]] | None:
    """The running prefetcher's listing (start, archived names, queued segments), or None
    when none runs (or it stopped answering)."""
    if not _alive(spool):
        return None
    try:
        with open(os.path.join(spool, STATE), encoding="utf-8") as state:
            found = json.load(state)
        return str(found["start"]), set(found["archived"]), set(found["queue"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def covered(name: str, start: str) -> bool:
    """Whether a listing from segment ``start`` on says if ``name`` is archived: history
    files and segments of its timeline and later ones, from its position on."""
    timeline = name[:8]
    if timeline < start[:8]:
        return False
    if HISTORY_NAME.fullmatch(name):
        return True
    return SEGMENT_NAME.fullmatch(name) is not None and name[8:] >= start[8:]


def _alive(spool: str) -> bool:
    try:
        return time.time() - os.stat(os.path.join(spool, ALIVE)).st_mtime <= ALIVE_WITHIN
    except OSError:
        return False


def failed_mark(spool: str | os.PathLike[str], name: str) -> str:
    """Where the prefetcher says it could not bring ``name`` (and why)."""
    return os.path.join(spool, f".{name}.failed")


def _deliver(spool: str, name: str, dest: str) -> bool:
    try:
        os.replace(os.path.join(spool, name), dest)
    except OSError:
        return False
    return True


def _await(spool: str, name: str, dest: str) -> int | None:
    """Wait for the prefetcher to bring ``name``; None (the full CLI) if it cannot."""
    tmp = os.path.join(spool, f".{WANTED}.{os.getpid()}")
    try:
        with open(tmp, "w", encoding="ascii") as hint:
            hint.write(name)
        os.replace(tmp, os.path.join(spool, WANTED))
    except OSError:
        pass  # only a hint: the prefetcher brings it in its turn
    deadline = time.monotonic() + WAIT_FOR_SEGMENT
    while time.monotonic() < deadline:
        if _deliver(spool, name, dest):
            return 0
        if os.path.exists(failed_mark(spool, name)) or not _alive(spool):
            return None
        time.sleep(POLL)
    return None


def _name_and_dest(rest: list[str]) -> tuple[str, str] | None:
    """``%f`` and ``%p`` from the arguments after ``wal-fetch``; None for anything else."""
    positional: list[str] = []
    skip = False
    for arg in rest:
        if skip:
            skip = False
        elif arg == "--component":
            skip = True
        elif arg.startswith("--component="):
            continue
        elif arg.startswith("-"):
            return None  # --help, or an option this path does not know
        else:
            positional.append(arg)
    if skip or len(positional) != 2:
        return None
    if not (SEGMENT_NAME.fullmatch(positional[0]) or HISTORY_NAME.fullmatch(positional[0])):
        return None
    return positional[0], positional[1]
