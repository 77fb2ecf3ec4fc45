"""Point-in-time recovery: a base backup plus WAL replay into a new data directory, promoted."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from workers.context import Context
from workers.core.catalog import FACT_RECOVERABLE_UNTIL, find_backup, good_backups
from workers.core.config import Settings
from workers.core.errors import EngineError, KosmosError, NotFoundError, UsageError
from workers.core.manifest import Manifest
from workers.core.ports import Progress, no_progress
from workers.engines.postgres import (
    barman_cloud,
    base_download,
    fetch_spool,
    table_facts,
    wal_prefetch,
)
from workers.engines.postgres.barman_cloud import KIND_BASE, BarmanTarget
from workers.engines.postgres.cluster import (
    LocalInstance,
    RecoverySettings,
    TargetNotReached,
    hand_over,
    require_new_data_dir,
    wait_for_promotion,
    write_recovery_settings,
)
from workers.engines.postgres.conninfo import Conninfo

INSTALLED_BIN = "/opt/kosmos-backup/bin/kosmos-backup"
BIN_ENV = "KOSMOS_BACKUP_BIN"
RECOVERY_TIMEOUT = 4 * 3600.0
LOG_NAME = "kosmos-restore.log"
WAL_WAIT = 90.0
WAL_POLL = 2.0


@dataclass(frozen=True)
class Replay:
    """What a finished replay reached."""

    instance: LocalInstance
    conninfo: Conninfo
    restore_point: datetime | None
    timeline: int
    seconds: float
    stopped_at_target: bool


def kosmos_binary() -> str:
    """The kosmos-backup the postgres user runs: $KOSMOS_BACKUP_BIN, /opt's, else PATH's."""
    chosen = os.environ.get(BIN_ENV)
    if chosen:
        return chosen
    if os.access(INSTALLED_BIN, os.X_OK):
        return INSTALLED_BIN
    found = shutil.which("kosmos-backup")
    if not found:
        raise EngineError(
            "kosmos-backup is not installed where PostgreSQL can run it",
            hint=f"run .ci/postgres-user-setup or set {BIN_ENV}",
        )
    return found


def write_fetch_config(settings: Settings, component: str, path: Path) -> None:
    """A config just for wal-fetch: storage and the component, no database password."""
    storage = settings.storage.model_dump(mode="json")
    for key in ("access_key_id", "secret_access_key"):
        secret = getattr(settings.storage, key)
        storage[key] = secret.get_secret_value() if secret is not None else None
    comp = settings.component(component).model_dump(mode="json", exclude={"dsn"})
    doc = {"storage": storage, "components": {component: comp}}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(doc, out)
    hand_over(path)


def restore_command(config_path: Path, component: str) -> str:
    """PostgreSQL's restore_command: a shell string by PostgreSQL's design, so quoted."""
    parts = [kosmos_binary(), "--config", str(config_path), "wal-fetch"]
    parts += ["--component", component, "%f", "%p"]
    return " ".join(p if p in ("%f", "%p") else shlex.quote(p) for p in parts)


@contextlib.contextmanager
def prefetching(
    settings: Settings, component: str, data_dir: str
) -> Iterator[wal_prefetch.Running]:
    """The WAL prefetcher of a restore into ``data_dir`` and the config its restore_command
    reads, both beside the data directory; the process ends and both go on leaving."""
    parent, name = Path(data_dir).parent, Path(data_dir).name
    parent.mkdir(parents=True, exist_ok=True)
    config = parent / f".{name}.kosmos-wal-fetch.json"
    spool = parent / f".{name}.kosmos-wal-spool"
    shutil.rmtree(spool, ignore_errors=True)  # a crashed restore's leftovers
    try:
        write_fetch_config(settings, component, config)
        running = wal_prefetch.Running(config, component, spool)
        try:
            yield running
        finally:
            running.stop()
    finally:
        config.unlink(missing_ok=True)


def replay(
    settings: Settings,
    target: BarmanTarget,
    manifest: Manifest,
    *,
    data_dir: str,
    port: int,
    target_time: datetime | None = None,
    target_lsn: str | None = None,
    end_is_enough: bool = False,
    progress: Progress = no_progress,
    prefetch: wal_prefetch.Running | None = None,
) -> Replay:
    """Restore ``manifest``'s base backup into ``data_dir``, replay WAL, and promote.

    ``end_is_enough``: the archive is known to hold WAL past ``target_time``, so if replay
    finds no commit after the target, the end of the archive is the same state.
    ``prefetch``: a prefetcher started earlier (``prefetching``); else one starts here.
    """
    started = time.monotonic()
    require_new_data_dir(data_dir)
    with contextlib.ExitStack() as stack:
        if prefetch is None:
            prefetch = stack.enter_context(prefetching(settings, target.component, data_dir))
        prefetch.begin(manifest.details["begin_wal"], int(manifest.details["wal_segment_size"]))
        recovery = RecoverySettings(
            restore_command=restore_command(prefetch.config, target.component),
            target_time=target_time,
            target_lsn=target_lsn,
            inclusive=target_lsn is None,
            port=port,
        )
        progress("restore base backup", note=f"{manifest.id} into {data_dir}")
        instance = LocalInstance(data_dir, port, str(Path(data_dir) / LOG_NAME))
        info = _local_conninfo(settings, target.component, port)
        at_target, point, timeline = _restore_and_recover(
            settings, target, manifest, instance, info, recovery, end_is_enough, prefetch, progress
        )
    return Replay(instance, info, point, timeline, time.monotonic() - started, at_target)


def _restore_and_recover(
    settings: Settings,
    target: BarmanTarget,
    manifest: Manifest,
    instance: LocalInstance,
    info: Conninfo,
    recovery: RecoverySettings,
    end_is_enough: bool,
    prefetch: wal_prefetch.Running,
    progress: Progress,
) -> tuple[bool, datetime | None, int]:
    """The base backup into the instance's data directory, then recovery with the spool
    linked into pg_wal; whether it stopped at the target, its last commit and timeline."""
    data_dir = instance.data_dir
    spool_link = Path(fetch_spool.spool_of(Path(data_dir) / "pg_wal" / "RECOVERYXLOG"))
    try:
        base_download.restore(settings, target, manifest.details["barman_backup_id"], data_dir)
        hand_over(data_dir)
        spool_link.parent.mkdir(exist_ok=True)
        spool_link.symlink_to(prefetch.spool, target_is_directory=True)
        at_target = _run_recovery(instance, info, recovery, end_is_enough, progress)
        point, timeline = _reached(info)
    except BaseException:
        with contextlib.suppress(KosmosError):
            instance.stop(mode="immediate")
        raise
    finally:
        if spool_link.is_symlink():
            spool_link.unlink()
    return at_target, point, timeline


def _run_recovery(
    instance: LocalInstance,
    info: Conninfo,
    recovery: RecoverySettings,
    end_is_enough: bool,
    progress: Progress,
) -> bool:
    """Start the instance and wait until it is promoted; True when it stopped at the target."""
    progress("replay WAL", note=_target_note(recovery))
    try:
        _start_and_wait(instance, info, recovery)
        return recovery.target_time is not None or recovery.target_lsn is not None
    except TargetNotReached:
        if not end_is_enough:
            raise
    # No commit after the target in an archive that reaches past it: the end is the target.
    progress("replay WAL", note="no commit after the target; replaying to the end of the archive")
    _start_and_wait(instance, info, RecoverySettings(recovery.restore_command, port=recovery.port))
    return False


def _start_and_wait(instance: LocalInstance, info: Conninfo, recovery: RecoverySettings) -> None:
    write_recovery_settings(instance.data_dir, recovery)
    mark = instance.log_size()
    instance.start()
    wait_for_promotion(instance, info, RECOVERY_TIMEOUT, log_from=mark)


def _target_note(recovery: RecoverySettings) -> str:
    if recovery.target_time is not None:
        return f"to {recovery.target_time.isoformat()}"
    if recovery.target_lsn is not None:
        return f"to WAL position {recovery.target_lsn}"
    return "to the end of the archive"


def _reached(info: Conninfo) -> tuple[datetime | None, int]:
    """The last replayed commit time (static after promotion) and the new timeline."""
    with psycopg.connect(info.client_dsn(), connect_timeout=5, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_last_xact_replay_timestamp(),"
            " substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"
        ).fetchone()
    assert row is not None
    return row[0], int(row[1], 16)


def _local_conninfo(settings: Settings, component: str, port: int) -> Conninfo:
    """The component's credentials, pointed at the restored instance on this machine."""
    dsn = settings.component(component).dsn.get_secret_value()  # type: ignore[union-attr]
    info = Conninfo.parse(dsn)
    params = {k: v for k, v in info.params.items() if k != "hostaddr"}
    params.update(host="127.0.0.1", port=str(port))
    return Conninfo(params, info.password)


def summary(replay_result: Replay, databases: list[str]) -> dict[str, Any]:
    """Tables and exact row counts of the restored instance: every table's pages are read.

    A point in time has no recorded hashes to compare with, so none are computed (hashing
    every row cost a second of a scale-20 restore, for figures nobody read).
    """
    counts = table_facts.counts_now(replay_result.conninfo, databases)
    return {
        "databases": {
            db: {"tables": len(tables), "rows": sum(tables.values())}
            for db, tables in counts.items()
        },
        "tables": sum(len(t) for t in counts.values()),
        "rows": sum(sum(t.values()) for t in counts.values()),
    }


def restore_pitr(
    ctx: Context,
    component: str,
    ref: str,
    *,
    target_time: datetime | None,
    data_dir: str | None,
    port: int | None,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Restore a base backup into a NEW data directory, replay WAL to ``target_time`` (or the
    end of the archive), promote, run the verification queries, and leave it running."""
    if not data_dir or not port:
        raise UsageError(
            "a point-in-time restore needs a new data directory and a port",
            hint="pass --data-dir DIR --port PORT (the restored instance stays running there)",
        )
    comp = barman_cloud.postgres_component(ctx.settings, component)
    target = barman_cloud.target_for(ctx.settings, component)
    require_new_data_dir(data_dir)
    # Started before the catalog is read: its own start-up overlaps ours.
    with prefetching(ctx.settings, component, data_dir) as prefetch:
        manifest = choose_base(ctx, component, ref, target_time)
        if target_time is not None:
            await_wal(ctx, component, target_time, progress)
        result = replay(
            ctx.settings,
            target,
            manifest,
            data_dir=data_dir,
            port=port,
            target_time=target_time,
            end_is_enough=target_time is not None,
            progress=progress,
            prefetch=prefetch,
        )
    progress("verify", note="row counts of every table")
    names = list(comp.databases) or table_facts.databases(result.conninfo, ())
    return {**_outcome(manifest, result, target_time), **summary(result, names)}


def _outcome(manifest: Manifest, result: Replay, target_time: datetime | None) -> dict[str, Any]:
    point = result.restore_point
    return {
        "component": manifest.component,
        "backup_id": manifest.id,
        "barman_backup_id": manifest.details["barman_backup_id"],
        "data_dir": result.instance.data_dir,
        "port": result.instance.port,
        "target_time": target_time.isoformat() if target_time else None,
        "restore_point": point.isoformat() if point else None,
        "seconds_before_target": (
            (target_time - point).total_seconds() if target_time and point else None
        ),
        "stopped_at_target": result.stopped_at_target,
        "timeline": result.timeline,
        "duration_seconds": round(result.seconds, 1),
    }


def choose_base(ctx: Context, component: str, ref: str, target_time: datetime | None) -> Manifest:
    """The base backup to start from: ``ref``, or for ``latest`` the newest ending before the
    target."""
    index = ctx.repo.index(component)
    if ref != "latest":
        found = find_backup(index, ref)
        if found is None:
            raise NotFoundError(f"{component}: no backup {ref!r}", see=("list", component))
        if found.kind != KIND_BASE:
            raise UsageError(
                f"{found.id} is a {found.kind} backup; point-in-time recovery needs a base backup",
                see=("list", component),
            )
        manifest = ctx.repo.manifest(found.id)
        if target_time is not None and base_end(manifest) > target_time:
            raise UsageError(
                f"{manifest.id} ends at {base_end(manifest):%Y-%m-%d %H:%M:%S}Z, after the target",
                hint="choose an older base backup, or 'latest'",
            )
        return manifest
    bases = [b for b in good_backups(index) if b.kind == KIND_BASE]
    for candidate in reversed(bases):
        manifest = ctx.repo.manifest(candidate.id)
        if target_time is None or base_end(manifest) <= target_time:
            return manifest
    when = f" that ends before {target_time:%Y-%m-%d %H:%M:%S}Z" if target_time else ""
    raise NotFoundError(
        f"{component}: no base backup{when}",
        hint="take one with:",
        see=("backup", component, "--base"),
    )


def base_end(manifest: Manifest) -> datetime:
    """When a base backup became consistent: the earliest time it can be restored to."""
    return datetime.fromisoformat(manifest.details["end_time"])


def archive_end(ctx: Context, component: str) -> datetime | None:
    """The newest instant the WAL archive holds, as wal-push recorded it in the catalog."""
    value = ctx.repo.index(component).facts.get(FACT_RECOVERABLE_UNTIL)
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value)
    return value if isinstance(value, datetime) else None


def await_wal(ctx: Context, component: str, target_time: datetime, progress: Progress) -> None:
    """Return once the archive holds WAL past ``target_time``; say plainly why not otherwise.

    PostgreSQL otherwise fails with "recovery ended before configured recovery target was
    reached" until the segment holding the first commit after the target is archived.
    """
    end = archive_end(ctx, component)
    if target_time > ctx.clock():
        raise NotFoundError(
            f"WAL up to that time does not exist yet: the archive ends at {_at(end)}, "
            f"and {_at(target_time)} is in the future",
            hint="pick a time in the past, or leave out the time to restore to the end",
        )
    # The segment holding the target closes within archive_timeout once it has writes.
    deadline = time.monotonic() + WAL_WAIT
    while end is None or end < target_time:
        message = (
            f"waiting for WAL: the archive ends at {_at(end)}, before the target {_at(target_time)}"
        )
        if time.monotonic() > deadline:
            raise NotFoundError(
                message,
                hint="the source archives it at its next WAL switch (archive_timeout, or "
                "SELECT pg_switch_wal()); check pg_stat_archiver there, or restore to the end",
            )
        progress("waiting for WAL", note=message)
        time.sleep(WAL_POLL)
        end = archive_end(ctx, component)


def _at(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "nothing yet"
