"""The ``kosmos-backup`` console script: archive_command's fast path, then the CLI.

``wal-push --async`` runs once per WAL segment and only waits for the archiver's mark,
so it is answered before the CLI (click, pydantic, redis, boto3) is imported at all.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Answer ``wal-push --async`` from the spool, or run the full CLI."""
    argv = sys.argv[1:]
    if "wal-push" in argv and "--async" in argv:
        from workers.engines.postgres import wal_async

        code = wal_async.lean_push(argv)
        if code is not None:
            sys.exit(code)
    from bot.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
