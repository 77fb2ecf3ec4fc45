"""The ``kosmos-backup`` console script: the fast paths, then the CLI.

``wal-push --async`` (archive_command) runs once per WAL segment and only waits for the
archiver's mark; ``wal-fetch`` (restore_command) mostly finds its segment already
prefetched into the spool; ``status`` is answered by a running `up` over its socket
(bot.status_socket). All three are answered before the CLI (click, pydantic, redis,
boto3) is imported at all, and fall through to it when their fast path cannot answer.
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import SourceFileLoader
from types import ModuleType

WAL_ASYNC = ("engines", "postgres", "wal_async.py")
FETCH_SPOOL = ("engines", "postgres", "fetch_spool.py")


def main() -> None:
    """Answer ``wal-push --async`` or ``wal-fetch`` from their spools, or run the full CLI."""
    argv = sys.argv[1:]
    code = None
    if "wal-push" in argv and "--async" in argv:
        code = _lean_module(WAL_ASYNC).lean_push(argv)
    elif "wal-fetch" in argv:
        code = _lean_module(FETCH_SPOOL).lean_fetch(argv)
    elif "status" in argv:
        from bot.status_socket import lean_status  # `up` answers it, when it runs

        code = lean_status(argv)
    if code is not None:
        sys.exit(code)
    from bot.cli import main as cli_main

    cli_main()


def _lean_module(parts: tuple[str, ...]) -> ModuleType:
    """A module of workers.engines.postgres, loaded by path, on its own: these answers need
    the standard library only, not even the registry's package (``workers.engines``).
    Neither pathlib nor importlib.util: restore_command pays each import once a segment."""
    import workers

    path = os.path.join(os.path.dirname(workers.__file__), *parts)
    name = f"kosmos_{os.path.basename(path).removesuffix('.py')}"
    loader = SourceFileLoader(name, path)
    module = ModuleType(name)
    module.__file__, module.__loader__ = path, loader
    sys.modules[name] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
