"""Velero backups: create one and watch it finish, the daily Schedule, list, verify, prune.

The data lives in Velero's own bucket; our repository holds the record: the finished
``Backup`` object and the workloads it covered, under a manifest that names the Velero
backup, its phase, items, warnings, errors and times. A backup that ends PartiallyFailed or
Failed is committed with a failed verification (so ``latest`` and the RPO never count it)
and the run fails, naming the counts.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ConfigDict

from workers.context import Context
from workers.core.errors import EngineError, IntegrityError, KosmosError, UsageError
from workers.core.manifest import Manifest, VerificationRecord, VerificationState
from workers.core.model import Model
from workers.core.ports import Progress, no_progress
from workers.core.retention import Deletion
from workers.engines.velero import objects
from workers.engines.velero.cluster import Cluster, connected, settings_of
from workers.engines.velero.objects import Outcome, outcome, relay
from workers.engines.velero.restores import scratch_check
from workers.storage import expiry

KIND = "velero"
RECORD = "velero-backup.json"
WORKLOADS = "workloads.json"
BACKUP_BUDGET = 4 * 3600.0
"""Seconds a Velero backup may take before we stop watching (Velero goes on)."""


def backup(
    ctx: Context, component: str, *, base: bool = False, progress: Progress = no_progress
) -> Manifest:
    """Create a Velero Backup of the component's namespaces, wait for it, commit our record."""
    if base:
        raise UsageError("velero backups have no base backup", hint="run it without --base")
    settings = settings_of(ctx, component)
    spec = objects.backup_spec(settings.namespaces, settings.retention, settings.storage_location)
    with connected(ctx, component) as cluster, ctx.repo.begin(component, KIND) as writer:
        schedule = _keep_schedule(cluster, spec, progress)
        name = objects.velero_name(writer.id)
        inventory = {ns: sorted(w.key for w in cluster.workloads(ns)) for ns in settings.namespaces}
        cluster.create("backups", objects.backup_body(name, writer.id, spec, cluster.namespace))
        final = cluster.follow(
            "backups",
            name,
            until=lambda obj: outcome(obj).finished,
            seen=relay(progress, "backup"),
            budget=BACKUP_BUDGET,
        )
        result = outcome(final)
        writer.write(RECORD, [json.dumps(final, sort_keys=True).encode()])
        writer.write(WORKLOADS, [json.dumps(inventory, sort_keys=True).encode()])
        manifest = writer.commit(
            source={
                "namespaces": list(settings.namespaces),
                "velero_namespace": settings.velero_namespace,
                "storage_location": settings.storage_location,
            },
            details={**result.details(), "inventory": inventory, "schedule": schedule},
            tool_versions={"velero": str((final.get("status") or {}).get("version") or "")},
            verification=_unsuccessful(ctx, result),
        )
    if not result.succeeded:
        raise EngineError(
            f"velero backup {result.summary()}",
            hint=f"not a good backup; see `velero backup describe {name} --details`",
        )
    return manifest


def _unsuccessful(ctx: Context, result: Outcome) -> VerificationRecord | None:
    if result.succeeded:
        return None
    return VerificationRecord(
        state=VerificationState.FAILED, at=ctx.clock(), detail=result.summary()[:500]
    )


def ensure_schedule(ctx: Context, component: str) -> dict[str, Any]:
    """Create the daily 03:00 Schedule, or bring its spec back to ours; return it."""
    settings = settings_of(ctx, component)
    spec = objects.backup_spec(settings.namespaces, settings.retention, settings.storage_location)
    with connected(ctx, component) as cluster:
        return _schedule(cluster, spec)


def _schedule(cluster: Cluster, spec: dict[str, Any]) -> dict[str, Any]:
    wanted = objects.schedule_body(spec, cluster.namespace)
    current = cluster.find("schedules", objects.SCHEDULE_NAME)
    if current is None:
        return cluster.create("schedules", wanted)
    if current.get("spec") != wanted["spec"]:
        return cluster.patch("schedules", objects.SCHEDULE_NAME, {"spec": wanted["spec"]})
    return current


def _keep_schedule(cluster: Cluster, spec: dict[str, Any], progress: Progress) -> str:
    """Keep Velero's own daily Schedule (it runs even when we are down) in step with config.

    A failure here is noted, not fatal: the backup asked for now matters more.
    """
    try:
        _schedule(cluster, spec)
    except KosmosError as exc:
        progress("schedule", note=f"daily schedule not kept: {exc.message}")
        return f"not kept: {exc.message}"[:300]
    return f"{objects.SCHEDULE_NAME} at {objects.DAILY_AT_THREE}"


class Listed(Model):
    """One line of the list: a Velero backup, with our backup id when we made it."""

    model_config = ConfigDict(frozen=True)

    velero_backup: str
    backup_id: str | None
    phase: str
    items: int
    errors: int
    warnings: int
    started_at: str | None
    completed_at: str | None
    recorded: bool


def list_backups(ctx: Context, component: str) -> list[Listed]:
    """Velero's Backup objects and our manifests together, newest first."""
    ours = {objects.velero_name(b.id): b for b in reversed(ctx.repo.index(component).backups)}
    with connected(ctx, component) as cluster:
        live = {obj["metadata"]["name"]: obj for obj in cluster.all("backups")}
    lines = []
    for name in set(ours) | set(live):
        summary = ours.get(name)
        # Gone from Velero (its TTL) but still in our catalog until prune: "Deleted".
        now = outcome(live[name]) if name in live else Outcome(name=name, phase="Deleted")
        lines.append(
            Listed(
                velero_backup=name,
                backup_id=summary.id if summary else None,
                phase=now.phase,
                items=now.items_done,
                errors=now.errors,
                warnings=now.warnings,
                started_at=now.started_at.isoformat() if now.started_at else None,
                completed_at=now.completed_at.isoformat() if now.completed_at else None,
                recorded=summary is not None,
            )
        )
    return sorted(lines, key=lambda line: line.started_at or "", reverse=True)


def verify(
    ctx: Context,
    component: str,
    manifest: Manifest,
    *,
    deep: bool = False,
    progress: Progress = no_progress,
) -> Manifest:
    """Check our record's checksums and Velero's backup (phase, errors, validation).

    ``deep`` also restores it into scratch namespaces and checks the workloads came back.
    """
    checks: dict[str, Any] = {}
    try:
        for entry in manifest.objects:
            ctx.repo.check_object(manifest, entry.name)
        checks["objects"] = len(manifest.objects)
        name = str(manifest.details.get("velero_backup") or objects.velero_name(manifest.id))
        with connected(ctx, component) as cluster:
            progress("verify", note=f"read velero backup {name}")
            result = outcome(cluster.get("backups", name))
            checks.update(phase=result.phase, errors=result.errors, warnings=result.warnings)
            if not result.succeeded:
                raise IntegrityError(f"velero backup {result.summary()}")
            if deep:
                checks.update(scratch_check(ctx, cluster, manifest, progress))
        record = VerificationRecord(
            state=VerificationState.PASSED,
            at=ctx.clock(),
            deep=deep,
            detail=_passed(checks, deep),
            checks=checks,
        )
    except KosmosError as exc:
        record = VerificationRecord(
            state=VerificationState.FAILED,
            at=ctx.clock(),
            deep=deep,
            detail=exc.message[:500],
            checks=checks,
        )
    return ctx.repo.record_verification(manifest, record)


def _passed(checks: dict[str, Any], deep: bool) -> str:
    text = f"velero backup {checks['phase']}, {checks['errors']} errors"
    if deep:
        text += f"; restored {checks.get('restored', 0)} workloads into scratch namespaces"
    return text


def prune(ctx: Context, component: str, *, dry_run: bool = False) -> list[Deletion]:
    """Expire our records past retention; Velero deletes its own backups by their TTL."""
    settings = settings_of(ctx, component)
    return expiry.expire_backups(
        ctx.repo,
        component,
        now=ctx.clock(),
        retention=settings.retention,
        keep_last=settings.keep_last,
        dry_run=dry_run,
    )
