"""PostgreSQL's archive_command and restore_command: wal-push and wal-fetch over barman-cloud.

PostgreSQL's rules: exit 0 only when the segment is durably stored; never overwrite an
archived segment with different content; answer well within archive_timeout. barman-cloud-
wal-archive (3.19) overwrites silently, so the overwrite check is ours: an archived file of
the same name is fetched back and compared byte for byte.
"""

from __future__ import annotations

import filecmp
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from workers.core.catalog import FACT_RECOVERABLE_UNTIL
from workers.core.config import Settings
from workers.core.errors import IntegrityError, KosmosError, NotFoundError, UsageError
from workers.engines.postgres import barman_cloud, wal_archive
from workers.engines.postgres.barman_cloud import KIND_BASE, BarmanFailed, BarmanTarget
from workers.storage.configured import open_repository

PUSH_TIMEOUT = 30.0
"""Hard bound on one archive upload: far below a 60 s archive_timeout, retries included."""
FETCH_TIMEOUT = 300.0
FACT_LAST_ARCHIVED = "wal_last_archived"
FACT_LAST_SEGMENT = "wal_last_segment"


def wal_push(settings: Settings, wal_path: str, component: str | None = None) -> None:
    """Archive one WAL file (``%p``); raise unless it is stored, identical, in the archive."""
    name = os.path.basename(wal_path)
    if not wal_archive.is_wal_name(name):
        raise UsageError(f"{name!r} is not a WAL file name", hint="archive_command passes %p")
    component = component or barman_cloud.default_component(settings)
    target = barman_cloud.target_for(settings, component, quick=True)
    archive = barman_cloud.wal_archive(settings, target)
    if archive.find(name) is not None:
        _same_as_archived(settings, target, name, wal_path)
        return
    barman_cloud.run(
        target, "barman-cloud-wal-archive", ["--zstd"], positional=[wal_path], timeout=PUSH_TIMEOUT
    )
    if wal_archive.is_segment(name):
        _record_freshness(settings, component, name, wal_path)


def _same_as_archived(settings: Settings, target: BarmanTarget, name: str, wal_path: str) -> None:
    """A retried push of an archived file is fine only when the content is identical."""
    with tempfile.TemporaryDirectory(prefix="kosmos-wal-") as scratch:
        copy = str(Path(scratch) / name)
        _fetch(target, name, copy)
        if not filecmp.cmp(copy, wal_path, shallow=False):
            raise IntegrityError(
                f"WAL file {name} is already archived with different content; not overwriting",
                hint=f"two servers archiving to {target.describe()}? "
                "give each its own components.<name>.server_name",
            )


def _record_freshness(settings: Settings, component: str, name: str, wal_path: str) -> None:
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
    _fetch(barman_cloud.target_for(settings, component), wal_name, dest_path)


def _fetch(target: BarmanTarget, name: str, dest: str) -> None:
    try:
        barman_cloud.run(
            target,
            "barman-cloud-wal-restore",
            [],
            positional=[name, dest],
            timeout=FETCH_TIMEOUT,
        )
    except BarmanFailed as exc:
        if exc.returncode == barman_cloud.EXIT_OPERATION:
            raise NotFoundError(f"WAL file {name} is not in {target.describe()}") from exc
        raise
