"""restore_command's spool of prefetched WAL, and the lean answer from it.

Each ``wal-fetch`` that reaches barman-cloud-wal-restore also downloads the next segments,
in parallel, into ``pg_wal/kosmos-fetch-spool`` (see wal_shipping). PostgreSQL then asks
for those one call at a time; ``lean_fetch`` answers them by a rename, before the CLI
(click, pydantic, boto3) is imported or barman is started: tens of milliseconds instead
of seconds a segment. Anything it cannot answer goes to the full CLI unchanged.

The spool holds only whole files: restore_command runs one call at a time, and the call
that filled it exited only after all its downloads had finished. This module imports only
the standard library: the console script loads it by path (bot.launch).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SPOOL = "kosmos-fetch-spool"
SEGMENT_NAME = re.compile(r"[0-9A-F]{24}")
"""Only segments are prefetched (history and backup-label files are asked for by name)."""


def spool_of(dest: str | os.PathLike[str]) -> Path:
    """The spool beside a restore_command destination (``%p``, inside pg_wal)."""
    return Path(os.path.abspath(dest)).parent / SPOOL


def lean_fetch(argv: list[str]) -> int | None:
    """``wal-fetch %f %p`` from the spool: 0 once delivered, None when the CLI must answer."""
    args = _name_and_dest(argv[argv.index("wal-fetch") + 1 :])
    if args is None:
        return None
    name, dest = args
    try:
        os.replace(spool_of(dest) / name, dest)
    except OSError:
        return None  # not prefetched (or not movable): barman fetches it, and explains
    return 0


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
    if skip or len(positional) != 2 or not SEGMENT_NAME.fullmatch(positional[0]):
        return None
    return positional[0], positional[1]
