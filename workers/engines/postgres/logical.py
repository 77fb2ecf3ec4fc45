"""The PostgreSQL driver: logical dumps (here) and base backups/PITR (barman.py)."""

from __future__ import annotations

import contextlib
import importlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from workers.context import Context
from workers.core.catalog import find_backup, good_backups
from workers.core.config import PostgresComponent
from workers.core.errors import EngineError, IntegrityError, KosmosError, NotFoundError, UsageError
from workers.core.manifest import Manifest, VerificationRecord, VerificationState
from workers.core.ports import Progress, no_progress
from workers.core.retention import Deletion
from workers.engines.postgres import archives as pg_archive
from workers.engines.postgres import queries
from workers.engines.postgres.conninfo import Conninfo
from workers.engines.postgres.health import (
    config_problems as config_problems,  # the engine's checks
)
from workers.engines.postgres.health import unreachable as unreachable
from workers.engines.postgres.restoration import (
    Restoration,
    RestoreResult,
    dumps_of,
    identities,
    plan,
    scratch_check,
)
from workers.storage import expiry
from workers.storage.repository import BackupWriter

KIND_LOGICAL = "postgres-logical"
KIND_BASE = "postgres-base"
BARMAN_MODULE = "workers.engines.postgres.base_backups"


def settings_of(ctx: Context, component: str) -> PostgresComponent:
    """The component's settings, which must be of kind postgres."""
    settings = ctx.settings.component(component)
    if not isinstance(settings, PostgresComponent):
        raise EngineError(f"component {component} is {settings.kind}, not postgres")
    return settings


def source_of(ctx: Context, component: str) -> Conninfo:
    """The component's DSN, parsed; the password stays inside the Conninfo."""
    return Conninfo.parse(settings_of(ctx, component).dsn.get_secret_value())


def backup(
    ctx: Context, component: str, *, base: bool = False, progress: Progress = no_progress
) -> Manifest:
    """Dump the configured databases and the globals into one backup; commit its manifest.

    A database that fails to dump does not stop the others: the backup is committed with
    what succeeded, recorded as failed (so ``latest`` and the RPO skip it), and the run
    ends in an EngineError naming it. Only when no database dumps is nothing committed.
    """
    if base:
        return _barman().base_backup(ctx, component, progress=progress)  # type: ignore[no-any-return]
    settings = settings_of(ctx, component)
    source = Conninfo.parse(settings.dsn.get_secret_value())
    with contextlib.closing(queries.connect(source)) as conn:
        databases = list(settings.databases) or queries.list_databases(conn)
        server = queries.server_facts(conn)
    encrypted = bool(ctx.repo.options.recipients)
    # The version probe and the globals each cost a process start (Debian's pg_wrapper is
    # slow to start): run them beside the dumps, not before or after.
    with ThreadPoolExecutor(2, thread_name_prefix="pg-side") as side:
        version = side.submit(pg_archive.tool_version, "pg_dump")
        globals_sql = side.submit(pg_archive.read_globals, source, role_passwords=encrypted)
        with ctx.repo.begin(component, KIND_LOGICAL) as writer:
            dumped, failed = _dump_each(writer, source, databases, settings.dump_jobs, progress)
            if failed and not dumped:
                raise _nothing_dumped(failed)
            progress("dump globals")
            pg_archive.write_globals(writer, globals_sql.result(), role_passwords=encrypted)
            manifest = writer.commit(
                source={**server, "databases": databases},
                details={
                    "format": f"pg_dump custom ({pg_archive.archive_compression()} inside)",
                    "hash_scheme": queries.HASH_SCHEME,
                    "databases": dumped,
                    pg_archive.FAILED_DATABASES: {n: e.message for n, e in failed.items()},
                },
                tool_versions={"pg_dump": version.result(), "server": server["server_version"]},
                verification=_incomplete(failed, ctx.clock()),
            )
    if failed:
        raise EngineError(
            f"backup {manifest.id} is incomplete: {len(failed)} of {len(databases)} databases "
            f"failed to dump: {_failures(failed)}",
            hint=f"it holds the other {len(dumped)} and is marked failed, so latest skips it;"
            " fix the cause and run:",
            see=("backup", component),
        )
    return manifest


def _dump_each(
    writer: BackupWriter, source: Conninfo, databases: list[str], jobs: int, progress: Progress
) -> tuple[dict[str, Any], dict[str, EngineError]]:
    """Dump the databases, ``jobs`` at once: (facts of those dumped, the error of each failed)."""
    dumped: dict[str, Any] = {}
    failed: dict[str, EngineError] = {}
    workers = max(1, min(jobs, len(databases)))
    with ThreadPoolExecutor(workers, thread_name_prefix="pg-dump") as pool:
        running = {
            name: pool.submit(pg_archive.dump_database, writer, source, name, progress)
            for name in databases
        }
        for database, future in running.items():
            try:
                dumped[database] = future.result()
            except EngineError as exc:
                # The database's own problem (gone, refused, a pg_dump error): the store's
                # errors are not caught, as every other dump would fail the same way.
                failed[database] = exc
                progress(f"dump {database}", note=f"failed: {exc.message}")
            except BaseException:
                for other in running.values():
                    other.cancel()  # the ones not started; those running end with the writer
                raise
    return dumped, failed


def _failures(failed: dict[str, EngineError]) -> str:
    return "; ".join(f"{name}: {exc.message}" for name, exc in failed.items())


def _nothing_dumped(failed: dict[str, EngineError]) -> EngineError:
    if len(failed) == 1:
        return next(iter(failed.values()))
    first = next(iter(failed.values()))
    return EngineError(f"every database failed to dump: {_failures(failed)}", hint=first.hint)


def _incomplete(failed: dict[str, EngineError], now: datetime) -> VerificationRecord | None:
    """The record that keeps a backup missing databases from ever counting as good."""
    if not failed:
        return None
    return VerificationRecord(
        state=VerificationState.FAILED,
        at=now,
        detail=f"incomplete: not dumped: {_failures(failed)}"[:500],
    )


def verify(
    ctx: Context,
    component: str,
    manifest: Manifest,
    *,
    deep: bool = False,
    progress: Progress = no_progress,
) -> Manifest:
    """Check every object's sha256 and parse every archive; ``deep`` restores and compares."""
    if manifest.kind == KIND_BASE:
        outcome = _barman().verify_base(ctx, manifest, deep=deep)
        if isinstance(outcome, VerificationRecord):
            return ctx.repo.record_verification(manifest, outcome)
        return outcome  # type: ignore[no-any-return]
    checks: dict[str, Any] = {}
    # A database that never made it into the backup fails it, however sound the rest is.
    missing = manifest.details.get(pg_archive.FAILED_DATABASES) or {}
    problems = [f"{name}: not in this backup ({error})" for name, error in missing.items()]
    for entry in manifest.objects:
        progress("verify checksum", note=entry.name)
        try:
            ctx.repo.check_object(manifest, entry.name)
            checks[entry.name] = {"sha256": "ok"}
        except (IntegrityError, NotFoundError) as exc:
            checks[entry.name] = {"sha256": exc.message}
            problems.append(exc.message)
    keys = identities(ctx.settings)
    if deep:
        # An unreachable server is not the backup's fault: fail here, before recording.
        with contextlib.closing(queries.connect(source_of(ctx, component).maintenance())):
            pass
    for database, entry in dumps_of(manifest).items():
        if checks[entry.name]["sha256"] != "ok":
            continue
        if entry.meta.get("encrypted") and not keys:
            # Not a fault of the backup: this verifier cannot decrypt it.
            checks[entry.name]["archive"] = "not parsed: no age identity (encryption.identity_file)"
            continue
        try:
            checks[entry.name] |= _check_archive(ctx, component, manifest, entry.name, keys, deep)
        except KosmosError as exc:
            checks[entry.name]["archive"] = exc.message
            problems.append(f"{database}: {exc.message}")
        mismatches = checks[entry.name].get("mismatches", [])
        problems += [f"{database}: {line}" for line in mismatches]
    record = VerificationRecord(
        state=VerificationState.FAILED if problems else VerificationState.PASSED,
        at=ctx.clock(),
        deep=deep,
        detail="; ".join(problems)[:500] if problems else _summary(checks, deep),
        checks=checks,
    )
    return ctx.repo.record_verification(manifest, record)


def _check_archive(
    ctx: Context, component: str, manifest: Manifest, name: str, keys: list[str], deep: bool
) -> dict[str, Any]:
    listing = pg_archive.list_archive(ctx.repo.open_object(manifest, name, keys))
    result: dict[str, Any] = {"archive": "ok", **listing}
    if deep:
        entry = manifest.object(name)
        mismatches, tables, rows = scratch_check(
            ctx.repo, manifest, entry, source_of(ctx, component), keys
        )
        result |= {"restored_tables": tables, "restored_rows": rows, "mismatches": mismatches}
    return result


def _summary(checks: dict[str, Any], deep: bool) -> str:
    """What a passed verification checked: ``… restored and compared 4 tables / 100,011 rows``."""
    archives = sum(1 for c in checks.values() if c.get("archive") == "ok")
    objects = "1 object matches its" if len(checks) == 1 else f"{len(checks)} objects match their"
    parse = "1 archive parses" if archives == 1 else f"{archives} archives parse"
    text = f"{objects} sha256, {parse}"
    if deep:
        # The counts are the scratch restore's own, read back from the restored tables.
        tables = sum(c.get("restored_tables", 0) for c in checks.values())
        rows = sum(c.get("restored_rows", 0) for c in checks.values())
        text += f"; restored and compared {tables:,} tables / {rows:,} rows: all match"
    return text


def restore(
    ctx: Context,
    component: str,
    ref: str = "latest",
    *,
    target_database: str | None = None,
    target_dsn: str | None = None,
    database: str | None = None,
    in_place: bool = False,
    with_globals: bool = False,
    target_time: datetime | None = None,
    base: bool = False,
    data_dir: str | None = None,
    port: int | None = None,
    progress: Progress = no_progress,
) -> Any:
    """Restore a dump into a new database or instance; ``base``/``target_time`` mean PITR."""
    if base or target_time is not None:
        return _barman().restore_pitr(
            ctx,
            component,
            ref,
            target_time=target_time,
            data_dir=data_dir,
            port=port,
            progress=progress,
        )
    manifest = resolve_dump(ctx, component, ref)
    source = source_of(ctx, component)
    placements = plan(
        manifest,
        source,
        target_database=target_database,
        target_dsn=target_dsn,
        database=database,
    )
    run = Restoration(ctx.repo, manifest, source, identities(ctx.settings), progress)
    result: RestoreResult = run.run(placements, in_place=in_place, with_globals=with_globals)
    return result


def resolve_dump(ctx: Context, component: str, ref: str) -> Manifest:
    """The logical backup named by ``ref`` (``latest`` means the newest good dump)."""
    index = ctx.repo.index(component)
    if ref == "latest":
        dumps = [b for b in good_backups(index) if b.kind == KIND_LOGICAL]
        if not dumps:
            raise NotFoundError(
                f"{component}: no good logical backup yet",
                hint="run:",
                see=("backup", component),
            )
        return ctx.repo.manifest(dumps[-1].id)
    found = find_backup(index, ref)
    if found is None:
        raise NotFoundError(f"{component}: no backup {ref!r}", see=("list", component))
    if found.kind != KIND_LOGICAL:
        raise UsageError(
            f"{found.id} is a {found.kind} backup, not a dump",
            hint="restore it with --base (and --to TIME) into a new data directory",
        )
    return ctx.repo.manifest(found.id)


def prune(ctx: Context, component: str, *, dry_run: bool = False) -> list[Deletion | str]:
    """Delete dumps past retention (never the newest keep_last good); then barman's prune.

    Dumps come back as Deletion records; barman's entries are the ids it removed.
    """
    settings = settings_of(ctx, component)
    barman = _barman(required=False)  # imported first: a broken install fails before deleting
    deletions: list[Deletion | str] = []
    deletions += expiry.expire_backups(
        ctx.repo,
        component,
        now=ctx.clock(),
        retention=settings.retention,
        keep_last=settings.keep_last,
        kinds={KIND_LOGICAL},
        dry_run=dry_run,
    )
    if barman is not None and hasattr(barman, "prune_base"):
        deletions += list(barman.prune_base(ctx, component, dry_run=dry_run) or [])
    return deletions


def _barman(required: bool = True) -> Any:
    # Imported on use: base backups and PITR live in their own module (barman-cloud).
    try:
        return importlib.import_module(BARMAN_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != BARMAN_MODULE:
            raise
        if not required:
            return None
        raise EngineError(
            "base backups and point-in-time recovery are not available in this build",
            hint="logical dumps work:",
            see=("backup", "postgres"),
        ) from None
