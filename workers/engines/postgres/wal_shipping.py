"""PostgreSQL's archive_command and restore_command: wal-push and wal-fetch, barman's layout.

PostgreSQL's rules: exit 0 only when the segment is durably stored; never overwrite an
archived segment with different content; answer well within archive_timeout. wal-push
writes with a conditional PUT (wal_upload: the store refuses an overwrite, and the copy
there is compared byte for byte); wal-fetch runs barman-cloud-wal-restore.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from workers.core.catalog import FACT_RECOVERABLE_UNTIL
from workers.core.config import Settings
from workers.core.errors import KosmosError, NotFoundError, UsageError
from workers.engines.postgres import barman_cloud, fetch_spool, wal_archive
from workers.engines.postgres.barman_cloud import KIND_BASE, BarmanFailed, BarmanTarget
from workers.engines.postgres.wal_upload import WalUploader
from workers.storage.configured import open_repository

FETCH_TIMEOUT = 300.0
FETCH_PARALLEL = 8
FACT_LAST_ARCHIVED = "wal_last_archived"
FACT_LAST_SEGMENT = "wal_last_segment"


def wal_push(settings: Settings, wal_path: str, component: str | None = None) -> None:
    """Archive one WAL file (``%p``); raise unless it is stored, identical, in the archive."""
    name = os.path.basename(wal_path)
    if not wal_archive.is_wal_name(name):
        raise UsageError(f"{name!r} is not a WAL file name", hint="archive_command passes %p")
    component = component or barman_cloud.default_component(settings)
    # One conditional PUT in this process (wal_upload), not barman-cloud-wal-archive.
    written = WalUploader(settings, component).push(wal_path)
    if written and wal_archive.is_segment(name):
        record_freshness(settings, component, name, wal_path)


def confirm_async(wal_path: str, argv: list[str]) -> int:
    """``wal-push --async``: wait for the background archiver's mark (wal_async)."""
    from workers.engines.postgres import wal_async

    pg_wal = Path(wal_path).absolute().parent
    return wal_async.confirm(wal_path, wal_async.launch_argv(argv, pg_wal))


def run_archiver(settings: Settings, pg_wal: Path, component: str | None = None) -> None:
    """``wal-archiver``: serve ``pg_wal`` until it is idle (see wal_async); one client for all."""
    from workers.engines.postgres import wal_async

    name = component or barman_cloud.default_component(settings)
    uploader = WalUploader(settings, name)

    def stored(segment: str, path: str) -> None:
        if wal_archive.is_segment(segment):
            record_freshness(settings, name, segment, path)

    wal_async.serve(uploader, pg_wal, on_stored=stored)


def record_freshness(settings: Settings, component: str, name: str, wal_path: str) -> None:
    """Note the archive's newest instant in the catalog, once a base backup makes it count."""
    now = datetime.now(UTC)
    written = datetime.fromtimestamp(os.stat(wal_path).st_mtime, UTC)
    try:
        repo = open_repository(settings)
        if not any(b.kind == KIND_BASE for b in repo.index(component).backups):
            return
        repo.set_facts(
            component,
            **{
                FACT_LAST_ARCHIVED: now.isoformat(),
                FACT_RECOVERABLE_UNTIL: min(written, now).isoformat(),
                FACT_LAST_SEGMENT: name,
            },
        )
    except KosmosError as exc:
        # The segment is stored: PostgreSQL must hear success. Status just lags one segment.
        print(f"warning: {name} archived, catalog not updated: {exc.message}", file=sys.stderr)


def wal_fetch(
    settings: Settings, wal_name: str, dest_path: str, component: str | None = None
) -> None:
    """Restore one archived WAL file (``%f``) to ``%p``; NotFoundError when it is not there."""
    if not wal_archive.is_wal_name(wal_name):
        raise UsageError(f"{wal_name!r} is not a WAL file name", hint="restore_command passes %f")
    component = component or barman_cloud.default_component(settings)
    target = barman_cloud.target_for(settings, component)
    # PostgreSQL asks for the next timeline's history file at the start of recovery and
    # again at promotion; it is almost never there. One lookup says so, where barman's
    # process would take a second or more to start first.
    if not wal_archive.is_segment(wal_name) and not _archived(settings, target, wal_name):
        raise NotFoundError(f"WAL file {wal_name} is not in {target.describe()}")
    _fetch(target, wal_name, dest_path)


def _archived(settings: Settings, target: BarmanTarget, name: str) -> bool:
    return barman_cloud.wal_archive(settings, target).find(name) is not None


def run_prefetcher(settings: Settings, component: str, spool: Path) -> None:
    """``wal-prefetch``: keep a restore's spool ahead of replay (wal_prefetch)."""
    from workers.engines.postgres import wal_prefetch

    wal_prefetch.serve(settings, component, spool)


def _fetch(target: BarmanTarget, name: str, dest: str) -> None:
    # Prefetch: each call also downloads the next segments, side by side, into a spool
    # beside the destination (pg_wal, which base backups leave out); the calls for them
    # are then answered from it, by the console script before the CLI loads (fetch_spool).
    # barman writes them in place, so into a private folder first: the spool only ever
    # receives whole files, by rename, once barman has finished them all.
    spool = Path(fetch_spool.spool_of(dest))
    private = spool / f".barman-{os.getpid()}"
    try:
        barman_cloud.run(
            target,
            "barman-cloud-wal-restore",
            ["--parallel", str(FETCH_PARALLEL), "--spool-dir", str(private)],
            positional=[name, dest],
            timeout=FETCH_TIMEOUT,
        )
        for done in private.iterdir() if private.is_dir() else ():
            os.replace(done, spool / done.name)
    except BarmanFailed as exc:
        if exc.returncode == barman_cloud.EXIT_OPERATION:
            raise NotFoundError(f"WAL file {name} is not in {target.describe()}") from exc
        raise
    finally:
        shutil.rmtree(private, ignore_errors=True)
