"""The ``kosmos-backup`` console script: archive_command's fast path, then the CLI.

``wal-push --async`` runs once per WAL segment and only waits for the archiver's mark,
so it is answered before the CLI (click, pydantic, redis, boto3) is imported at all.
"""

from __future__ import annotations

import sys
from importlib import util
from pathlib import Path
from types import ModuleType

WAL_ASYNC = ("engines", "postgres", "wal_async.py")


def main() -> None:
    """Answer ``wal-push --async`` from the spool, or run the full CLI."""
    argv = sys.argv[1:]
    if "wal-push" in argv and "--async" in argv:
        code = _wal_async().lean_push(argv)
        if code is not None:
            sys.exit(code)
    from bot.cli import main as cli_main

    cli_main()


def _wal_async() -> ModuleType:
    """workers.engines.postgres.wal_async, loaded by path, on its own: this answer needs the
    standard library only, not even the registry's package (``workers.engines``)."""
    import workers

    path = Path(workers.__file__).parent.joinpath(*WAL_ASYNC)
    spec = util.spec_from_file_location("kosmos_wal_async", path)
    assert spec is not None and spec.loader is not None
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
