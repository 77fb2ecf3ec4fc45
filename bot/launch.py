"""The ``kosmos-backup`` console script: the fast paths, then the CLI.

``wal-push --async`` (archive_command) runs once per WAL segment and only waits for the
archiver's mark; ``wal-fetch`` (restore_command) mostly finds its segment already
prefetched into the spool; ``status`` is answered by a running `up` over its socket
(bot.status_socket). All three are answered before the CLI (click, pydantic, redis,
boto3) is imported at all, and fall through to it when their fast path cannot answer.
"""

from __future__ import annotations

import sys
from importlib import util
from pathlib import Path
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
    the standard library only, not even the registry's package (``workers.engines``)."""
    import workers

    path = Path(workers.__file__).parent.joinpath(*parts)
    spec = util.spec_from_file_location(f"kosmos_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
