"""PostgreSQL continuous archiving with barman-cloud: base backups, verify, PITR, prune, status.

Each base backup is barman's (data in ``_barman/<component>/``, see ``barman_cloud``) plus a
kosmos manifest of kind ``postgres-base`` that points at it and carries what verification
needs: barman's metadata and the row counts and hashes of every table at one WAL position.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from workers.context import Context
from workers.core.catalog import FACT_RECOVERABLE_UNTIL
from workers.core.errors import IntegrityError, KosmosError, NotFoundError
from workers.core.manifest import Manifest, VerificationRecord, VerificationState
from workers.core.ports import Progress, no_progress
from workers.engines.postgres import barman_cloud, table_facts
from workers.engines.postgres.barman_cloud import (
    KIND_BASE,
    BarmanTarget,
    postgres_component,
    target_for,
)
from workers.engines.postgres.cluster import TargetNotReached, free_port, hand_over
from workers.engines.postgres.conninfo import Conninfo
from workers.engines.postgres.pitr import replay, restore_pitr
from workers.engines.postgres.queries import compare_facts
from workers.engines.postgres.wal_archive import Segment, check_chain
from workers.engines.postgres.wal_shipping import (
    FACT_LAST_ARCHIVED,
    FACT_LAST_SEGMENT,
    wal_fetch,
    wal_push,
)

__all__ = [
    "KIND_BASE",
    "base_backup",
    "prune_base",
    "restore_pitr",
    "verify_base",
    "wal_fetch",
    "wal_push",
    "wal_status",
]

BACKUP_TIMEOUT = 12 * 3600.0
DELETE_TIMEOUT = 1800.0
WAL_WAIT = 90.0
WAL_POLL = 2.0
BARMAN_META = "barman-backup.json"
TABLES = "tables.json"


def base_backup(ctx: Context, component: str, *, progress: Progress = no_progress) -> Manifest:
    """Take a barman-cloud base backup of the component's cluster and commit its manifest.

    Uncompressed: barman-cloud-backup's only built-in codec is gzip at level 9, which made a
    24 MB cluster take twice as long here; WAL, the bulk over time, is zstd-compressed.
    """
    comp = postgres_component(ctx.settings, component)
    target = target_for(ctx.settings, component)
    info = Conninfo.parse(comp.dsn.get_secret_value())
    with ctx.repo.begin(component, KIND_BASE) as writer:
        progress("base backup", note=f"barman-cloud-backup of {info.describe()}")
        try:
            barman_cloud.run(
                target,
                "barman-cloud-backup",
                # An immediate checkpoint: the spread one waits out checkpoint_timeout
                # (a base backup here sat 106 s in pg_backup_start for it).
                ["--immediate-checkpoint", "-d", info.tool_dsn(), "-n", writer.id],
                timeout=BACKUP_TIMEOUT,
                env=info.tool_env(),
            )
            meta = barman_cloud.show(target, writer.id)
            progress("table facts", note="row counts and hashes at one WAL position")
            names = table_facts.databases(info, comp.databases)
            facts = table_facts.facts_at_one_point(info, names, mark=writer.id)
            writer.write(BARMAN_META, [json.dumps(meta, sort_keys=True, indent=1).encode()])
            writer.write(TABLES, [json.dumps(facts.tables, sort_keys=True).encode()])
        except BaseException:
            _forget(target, writer.id)
            raise
        manifest = writer.commit(
            source={**_source(info), "pgdata": meta.get("pgdata")},
            details=_details(target, meta, facts, names),
            tool_versions={
                "barman-cloud": barman_cloud.barman_version(),
                "postgresql": str(meta.get("version", "")),
            },
        )
    progress("done", note=f"{manifest.id}: {facts.table_count} tables, {facts.row_count} rows")
    return manifest


def _forget(target: BarmanTarget, name: str) -> None:
    """Remove barman's half of a backup that will get no manifest (best effort)."""
    with contextlib.suppress(KosmosError):
        barman_cloud.run(target, "barman-cloud-backup-delete", ["-b", name], timeout=600)


def _source(info: Conninfo) -> dict[str, Any]:
    return {"host": info.host, "port": info.port, "user": info.user}


def _details(
    target: BarmanTarget, meta: dict[str, Any], facts: table_facts.ClusterFacts, names: list[str]
) -> dict[str, Any]:
    return {
        "engine": "barman-cloud",
        "archive": target.url,
        "server_name": target.server_name,
        "barman_backup_id": meta["backup_id"],
        "barman_backup_name": meta.get("backup_name"),
        "begin_wal": meta["begin_wal"],
        "end_wal": meta["end_wal"],
        "begin_lsn": meta["begin_xlog"],
        "end_lsn": meta["end_xlog"],
        "begin_time": meta["begin_time_iso"],
        "end_time": meta["end_time_iso"],
        "timeline": meta["timeline"],
        "wal_segment_size": meta["xlog_segment_size"],
        "pg_version": meta.get("version"),
        "cluster_size": meta.get("cluster_size"),
        "systemid": meta.get("systemid"),
        "databases": names,
        "tables_lsn": facts.lsn,
        "tables_exact": facts.exact,
        "tables": facts.table_count,
        "rows": facts.row_count,
    }


def verify_base(
    ctx: Context, manifest: Manifest, *, deep: bool, progress: Progress = no_progress
) -> VerificationRecord:
    """Check a base backup: object checksums, barman's record, WAL chain; ``deep`` restores it.

    The record is returned, not stored: the caller records it with ``record_verification``.
    """
    problems: list[str] = []
    checks: dict[str, Any] = {}
    progress("checksums", note=f"{len(manifest.objects)} objects")
    for entry in manifest.objects:
        try:
            ctx.repo.check_object(manifest, entry.name)
        except (IntegrityError, NotFoundError) as exc:
            problems.append(exc.message)
    checks["objects"] = {"checked": len(manifest.objects), "failed": len(problems)}
    target = target_for(ctx.settings, manifest.component)
    details = manifest.details
    try:
        status = barman_cloud.show(target, details["barman_backup_id"]).get("status")
        if status != "DONE":
            problems.append(f"barman reports backup {details['barman_backup_id']} as {status}")
    except NotFoundError as exc:
        status = "missing"
        problems.append(exc.message)
    checks["barman"] = {"backup": details["barman_backup_id"], "status": status}
    progress("WAL chain", note=f"from {details['begin_wal']}")
    problems += _chain_problems(ctx, target, details, checks)
    if deep and not problems:
        problems += _deep_check(ctx, target, manifest, checks, progress)
    state = VerificationState.FAILED if problems else VerificationState.PASSED
    detail = "; ".join(problems) if problems else _passed_detail(checks, deep)
    return VerificationRecord(state=state, at=ctx.clock(), deep=deep, detail=detail, checks=checks)


def _chain_problems(
    ctx: Context, target: BarmanTarget, details: dict[str, Any], checks: dict[str, Any]
) -> list[str]:
    names = barman_cloud.wal_archive(ctx.settings, target).names()
    chain = check_chain(names, details["begin_wal"], int(details["wal_segment_size"]))
    checks["wal"] = {
        "first": chain.first,
        "last_contiguous": chain.last_contiguous,
        "missing": chain.missing,
        "newest": chain.newest,
    }
    end = Segment.parse(details["end_wal"])
    if chain.last_contiguous is None or Segment.parse(chain.last_contiguous) < end:
        return [f"WAL {chain.missing} is missing: the backup cannot reach a consistent state"]
    if chain.missing:
        return [
            f"the WAL chain breaks after {chain.last_contiguous}: {chain.missing} is missing, "
            "no point after it can be restored"
        ]
    return []


def _deep_check(
    ctx: Context,
    target: BarmanTarget,
    manifest: Manifest,
    checks: dict[str, Any],
    progress: Progress,
) -> list[str]:
    """Restore into a scratch cluster at the recorded WAL position and compare every table."""
    details = manifest.details
    lsn = details["tables_lsn"]
    segment = Segment.holding(lsn, int(details["timeline"]), int(details["wal_segment_size"]))
    problem = _await_segment(ctx, target, segment.name, progress)
    if problem:
        return [problem]
    recorded = _recorded_tables(ctx, manifest)
    scratch = Path(tempfile.mkdtemp(prefix="kosmos-verify-"))
    hand_over(scratch)
    result = None
    try:
        result = replay(
            ctx.settings,
            target,
            manifest,
            data_dir=str(scratch / "data"),
            port=free_port(),
            target_lsn=lsn,
            progress=progress,
        )
        progress("compare tables", note=f"{details['tables']} tables")
        restored = table_facts.facts_now(result.conninfo, list(recorded))
    except TargetNotReached as exc:
        return [f"replay could not reach WAL position {lsn}: {exc.message}"]
    except KosmosError as exc:
        if exc.transient:
            raise
        # The backup did not restore: that is the verdict, not an error of the check.
        return [f"restoring into a scratch cluster failed: {exc.message}"]
    finally:
        if result is not None:
            with contextlib.suppress(KosmosError):
                result.instance.stop(mode="immediate")
        shutil.rmtree(scratch, ignore_errors=True)
    return _compare(recorded, restored, bool(details.get("tables_exact")), checks)


def _compare(
    recorded: dict[str, dict[str, Any]],
    restored: dict[str, Any],
    exact: bool,
    checks: dict[str, Any],
) -> list[str]:
    mismatches: list[str] = []
    for db, tables in recorded.items():
        wrong, _ = compare_facts(tables, restored.get(db, {}), restored.get(db, {}).keys())
        mismatches += [f"{db}: {line}" for line in wrong]
    checks["deep"] = {
        "tables": sum(len(t) for t in recorded.values()),
        "mismatches": mismatches,
        "exact": exact,
    }
    if exact:
        return mismatches
    # The facts were taken while writes went on: differences are expected, not failures.
    return []


def _await_segment(ctx: Context, target: BarmanTarget, name: str, progress: Progress) -> str:
    archive = barman_cloud.wal_archive(ctx.settings, target)
    deadline = time.monotonic() + WAL_WAIT
    while archive.find(name) is None:
        if time.monotonic() > deadline:
            return f"waiting for WAL: segment {name} is not archived yet"
        progress("waiting for WAL", note=f"segment {name} is not archived yet")
        time.sleep(WAL_POLL)
    return ""


def _recorded_tables(ctx: Context, manifest: Manifest) -> dict[str, dict[str, Any]]:
    entry = next(e for e in manifest.objects if e.name.startswith(TABLES))
    identities = _identities(ctx)
    raw = b"".join(ctx.repo.open_object(manifest, entry.name, identities))
    return dict(json.loads(raw))


def _identities(ctx: Context) -> list[str]:
    path = ctx.settings.encryption.identity_file
    if not path:
        return []
    lines = Path(path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _passed_detail(checks: dict[str, Any], deep: bool) -> str:
    wal = checks.get("wal", {})
    text = f"{checks['objects']['checked']} objects intact"
    text += f"; WAL continuous {wal.get('first')}..{wal.get('newest')}"
    if deep:
        found = checks.get("deep", {})
        text += f"; restored and compared {found.get('tables', 0)} tables"
        if found.get("mismatches"):
            text += f" ({len(found['mismatches'])} changed while the facts were taken)"
    return text


def prune_base(ctx: Context, component: str, *, dry_run: bool) -> list[str]:
    """Delete base backups and WAL outside the recovery window; returns what went (or would)."""
    comp = postgres_component(ctx.settings, component)
    if ctx.settings.storage.scheme != "s3":
        return []  # barman-cloud needs S3: there is nothing of it to prune
    target = target_for(ctx.settings, component)
    days = max(1, math.ceil(comp.retention / timedelta(days=1)))
    args = ["-r", f"RECOVERY WINDOW OF {days} DAYS", "-m", str(comp.keep_last)]
    before = {b["backup_id"] for b in barman_cloud.list_backups(target)}
    if dry_run:
        done = barman_cloud.run(
            target, "barman-cloud-backup-delete", [*args, "--dry-run"], timeout=DELETE_TIMEOUT
        )
        gone = set(barman_cloud.deleted_backup_ids(done.stdout.decode())) & before
    else:
        barman_cloud.run(target, "barman-cloud-backup-delete", args, timeout=DELETE_TIMEOUT)
        gone = before - {b["backup_id"] for b in barman_cloud.list_backups(target)}
    named = []
    for summary in ctx.repo.index(component).backups:
        if summary.kind != KIND_BASE:
            continue
        manifest = ctx.repo.manifest(summary.id)
        if manifest.details.get("barman_backup_id") in gone:
            named.append(manifest.id)
            gone.discard(manifest.details["barman_backup_id"])
            if not dry_run:
                ctx.repo.delete(manifest)
    return named + sorted(f"barman:{backup_id}" for backup_id in gone)


def wal_status(ctx: Context, component: str) -> dict[str, Any]:
    """The WAL archive's freshness from the catalog: last segment, its time, and the lag."""
    index = ctx.repo.index(component)
    facts = index.facts
    until = _when(facts.get(FACT_RECOVERABLE_UNTIL))
    return {
        "component": component,
        "last_segment": facts.get(FACT_LAST_SEGMENT),
        "last_archived_at": facts.get(FACT_LAST_ARCHIVED),
        "recoverable_until": until.isoformat() if until else None,
        "lag_seconds": (ctx.clock() - until).total_seconds() if until else None,
        "base_backups": sum(1 for b in index.backups if b.kind == KIND_BASE),
    }


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value)
    return None
