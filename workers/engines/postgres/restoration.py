"""Restoring dumps into new databases or instances, then proving them against the manifest."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field

from workers.core.config import Settings
from workers.core.errors import (
    ConflictError,
    EngineError,
    IntegrityError,
    KosmosError,
    NotFoundError,
    UsageError,
)
from workers.core.manifest import Manifest, ObjectEntry
from workers.core.model import Model
from workers.core.ports import Progress, no_progress
from workers.core.restore_plan import check_database_name
from workers.engines.postgres import archive_restore, archives, queries
from workers.engines.postgres.conninfo import MAINTENANCE_DB, Conninfo
from workers.storage.repository import Repository

SCRATCH_PREFIX = "kb_verify_"
AFTER_DATA = "build indexes, check tables, commit"
"""The phase after the last byte: post-data, the table hashes and COMMIT, in one transaction."""
UNFINISHED = "restore in progress from backup"
RESTORED = "restored from backup"
"""A database a restore created carries ``COMMENT ON DATABASE`` '<UNFINISHED> <id> by
kosmos-backup' until the restore is done, then '<RESTORED> <id> ...', set in the restore's
own transaction (``restore_archive``): the data and the new comment commit together."""


class DatabaseRestore(Model):
    """One database restored: where to, how long, and whether it matches the backup."""

    model_config = ConfigDict(frozen=True)

    source_database: str
    database: str
    server: str
    created: bool
    in_place: bool
    seconds: float
    bytes: int
    tables: int
    rows: int
    checksums_matched: bool
    mismatches: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class RestoreResult(Model):
    """What a dump restore did, for the CLI, the job's events and the audit log."""

    model_config = ConfigDict(frozen=True)

    backup_id: str
    component: str
    duration_seconds: float
    databases: list[DatabaseRestore]
    globals_restored: bool = False
    globals_errors: list[str] = Field(default_factory=list)
    checksums_matched: bool


@dataclass(frozen=True)
class Placement:
    """One dump and the database it goes into."""

    dump: ObjectEntry
    source_database: str
    server: Conninfo
    database: str

    def maintenance(self) -> Conninfo:
        """Where to CREATE/DROP the target: never the target itself."""
        if self.server.dbname in (None, self.database):
            return self.server.with_dbname(MAINTENANCE_DB)
        return self.server


def dumps_of(manifest: Manifest) -> dict[str, ObjectEntry]:
    """The backup's database dumps by database name."""
    return {str(e.meta["database"]): e for e in manifest.objects if e.meta.get("database")}


def plan(
    manifest: Manifest,
    source: Conninfo,
    *,
    target_database: str | None,
    target_dsn: str | None,
    database: str | None,
) -> list[Placement]:
    """Which dump goes into which database on which server; UsageError when ambiguous."""
    dumps = dumps_of(manifest)
    if not dumps:
        raise NotFoundError(f"backup {manifest.id} holds no database dumps")
    if database is not None and database not in dumps:
        failed = manifest.details.get(archives.FAILED_DATABASES) or {}
        why = f" (it failed to dump: {failed[database]})" if database in failed else ""
        raise UsageError(
            f"backup {manifest.id} has no dump of database {database!r}{why}",
            hint=f"it has: {', '.join(sorted(dumps))}",
        )
    if target_database is None and target_dsn is None:
        raise UsageError(
            "say where to restore",
            hint="--target-database NAME (a new database on the source server) "
            "or --target-dsn DSN (another instance)",
        )
    server = Conninfo.parse(target_dsn, setting="--target-dsn") if target_dsn else source
    name = target_database or (server.dbname if target_dsn else None)
    if name is not None:
        check_database_name(name)
    if name is None:
        chosen = [database] if database else sorted(dumps)
        return [Placement(dumps[d], d, server, d) for d in chosen]
    if database is None and len(dumps) > 1:
        raise UsageError(
            f"backup {manifest.id} holds {len(dumps)} databases; choose one with --database",
            hint=f"it has: {', '.join(sorted(dumps))}",
        )
    chosen_db = database or next(iter(dumps))
    return [Placement(dumps[chosen_db], chosen_db, server, name)]


def identities(settings: Settings) -> list[str]:
    """age identities for restoring encrypted objects, from ``encryption.identity_file``."""
    path = settings.encryption.identity_file
    if not path:
        return []
    lines = Path(path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip().startswith("AGE-SECRET-KEY-")]


class Restoration:
    """One restore run: remembers what it created so a failure leaves nothing behind."""

    def __init__(
        self,
        repo: Repository,
        manifest: Manifest,
        source: Conninfo,
        keys: Sequence[str] = (),
        progress: Progress = no_progress,
    ) -> None:
        self.repo = repo
        self.manifest = manifest
        self.source = source
        self.keys = list(keys)
        self.progress = progress
        self.created: list[Placement] = []
        self.current: ObjectEntry | None = None

    def run(
        self, placements: Sequence[Placement], *, in_place: bool, with_globals: bool
    ) -> RestoreResult:
        """Restore every placement (globals first when asked); undo everything on failure."""
        started = time.monotonic()
        globals_errors: list[str] = []
        done = []
        try:
            if with_globals:
                globals_errors = self._globals(placements[0].server)
            for placement in placements:
                done.append(self._one(placement, in_place))
        except BaseException as exc:
            self.undo()
            if isinstance(exc, KosmosError) and not isinstance(exc, ConflictError | UsageError):
                self._blame_damage(exc)
            raise
        return RestoreResult(
            backup_id=self.manifest.id,
            component=self.manifest.component,
            duration_seconds=round(time.monotonic() - started, 3),
            databases=done,
            globals_restored=with_globals,
            globals_errors=globals_errors,
            checksums_matched=all(d.checksums_matched for d in done),
        )

    def _globals(self, server: Conninfo) -> list[str]:
        name = archives.GLOBALS
        entries = [e.name for e in self.manifest.objects if e.name.startswith(name)]
        if not entries:
            raise UsageError(f"backup {self.manifest.id} has no {name}")
        self.current = self.manifest.object(entries[0])
        self.progress("restore globals")
        errors = archives.restore_globals(
            self.repo.open_object(self.manifest, entries[0], self.keys), server
        )
        self.current = None
        return errors

    def _one(self, placement: Placement, in_place: bool) -> DatabaseRestore:
        with contextlib.closing(queries.connect(placement.maintenance())) as conn:
            exists = queries.database_exists(conn, placement.database)
            comment = (queries.database_comment(conn, placement.database) or "") if exists else ""
            if exists and not in_place:
                raise ConflictError(*self._refusal(placement, comment))
            # Ours: created now, or left by a restore that did not finish.
            ours = not exists or comment.startswith(UNFINISHED)
            if not exists:
                queries.create_database(conn, placement.database)
                self.created.append(placement)
            if ours:
                # A worker killed from here on leaves the database behind, empty (the
                # restore is one transaction); the comment tells the next restore why.
                with contextlib.suppress(EngineError):  # only a note: not owner, say
                    queries.comment_database(conn, placement.database, self._mark(UNFINISHED))
        self.current = placement.dump
        if exists:
            # Never pour damaged data into a database that already holds something.
            self.repo.check_object(self.manifest, placement.dump.name)
        started = time.monotonic()
        meter = archives.Meter(
            self.progress,
            f"restore {placement.source_database} -> {placement.database}",
            placement.dump.raw_size,
        )
        target = placement.server.with_dbname(placement.database)
        recorded = recorded_tables(self.manifest, placement.source_database)
        stream = meter(self.repo.open_object(self.manifest, placement.dump.name, self.keys))
        restored = archive_restore.restore_archive(
            _then(stream, lambda: self.progress(AFTER_DATA, note=placement.database)),
            target,
            {name: str(data["method"]) for name, data in recorded.items()},
            clean=exists,
            comment=self._mark(RESTORED) if ours else None,
        )
        seconds = time.monotonic() - started
        self.current = None
        facts = restored.facts
        mismatches, notes = queries.compare_facts(recorded, facts, restored.present)
        tables, rows = len(facts), sum(fact.rows for fact in facts.values())
        return DatabaseRestore(
            source_database=placement.source_database,
            database=placement.database,
            server=placement.server.describe(placement.database),
            created=not exists,
            in_place=exists,
            seconds=round(seconds, 3),
            bytes=meter.done,
            tables=tables,
            rows=rows,
            checksums_matched=not mismatches,
            mismatches=mismatches,
            notes=notes,
        )

    def _mark(self, what: str) -> str:
        return f"{what} {self.manifest.id} by kosmos-backup"

    def _refusal(self, placement: Placement, comment: str) -> tuple[str, str]:
        where = placement.server.describe(placement.database)
        if comment.startswith(UNFINISHED):
            return (
                f"database {placement.database} ({where}) is left from a restore that did not "
                f"finish ({comment}); nothing it restored was committed",
                "when no restore into it is running: pass --in-place to restore into it, "
                "or drop it first",
            )
        source_dbs = self.manifest.source.get("databases") or []
        if placement.server.same_server(self.source) and placement.database in source_dbs:
            return (
                f"database {placement.database} ({where}) is the live source database; "
                "restoring over it needs --in-place",
                "restore into a new database with --target-database, or pass --in-place",
            )
        return (
            f"database {placement.database} already exists ({where}); refusing to restore into it",
            "choose a new name with --target-database, drop it first, or pass --in-place",
        )

    def undo(self) -> None:
        """Drop every database this run created."""
        for placement in reversed(self.created):
            with (
                contextlib.suppress(KosmosError),
                contextlib.closing(queries.connect(placement.maintenance())) as conn,
            ):
                queries.drop_database(conn, placement.database)
        self.created.clear()

    def _blame_damage(self, exc: KosmosError) -> None:
        # pg_restore or zstd may choke on damaged bytes before the sha256 is confirmed;
        # re-reading the object tells a damaged backup from a failing server.
        if self.current is None:
            return
        try:
            self.repo.check_object(self.manifest, self.current.name)
        except IntegrityError as damage:
            raise IntegrityError(
                f"restore refused: {damage.message}",
                hint=f"backup {self.manifest.id} is damaged; no database was left behind",
            ) from exc
        except KosmosError:
            return


def _then(chunks: Iterable[bytes], action: Callable[[], None]) -> Iterator[bytes]:
    """Pass chunks through; call ``action`` once they ran out."""
    yield from chunks
    action()


def recorded_tables(manifest: Manifest, database: str) -> dict[str, Any]:
    """The table facts a backup recorded for one database (none in an older backup)."""
    return dict(manifest.details.get("databases", {}).get(database, {}).get("tables", {}))


def scratch_name(database: str) -> str:
    """``kb_verify_<random>_<database>``: names its source, so a database left by a killed
    verify says where it came from; cut to PostgreSQL's 63 bytes on a character boundary."""
    name = f"{SCRATCH_PREFIX}{secrets.token_hex(4)}_{database}"
    return name.encode()[:63].decode(errors="ignore")


def scratch_check(
    repo: Repository, manifest: Manifest, entry: ObjectEntry, source: Conninfo, keys: Sequence[str]
) -> tuple[list[str], int, int]:
    """Restore one dump into a throwaway database, compare, drop it: (mismatches, tables, rows)."""
    database = str(entry.meta["database"])
    placement = Placement(entry, database, source, scratch_name(database))
    run = Restoration(repo, manifest, source, keys)
    try:
        result = run.run([placement], in_place=False, with_globals=False)
    finally:
        run.undo()
    restored = result.databases[0]
    return restored.mismatches, restored.tables, restored.rows
