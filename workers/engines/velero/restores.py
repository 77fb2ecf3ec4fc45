"""Velero restores: whole or some namespaces, optionally mapped, and the deep verify's scratch run.

A ref names one of our backups (``latest``, an id, a prefix) or a Velero backup by name (the
daily Schedule makes those without us). PartiallyFailed is not success: the restore fails
with its error and warning counts. With a health budget, the restored namespaces must then
have every workload ready within it, or the restore fails naming the ones that are not.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from pydantic import ConfigDict

from workers.context import Context
from workers.core.catalog import find_backup, missing_backup
from workers.core.errors import (
    ConflictError,
    EngineError,
    IntegrityError,
    NotFoundError,
    UsageError,
)
from workers.core.manifest import Manifest
from workers.core.model import Model
from workers.core.ports import Progress, no_progress
from workers.engines.velero import objects, scaling
from workers.engines.velero.cluster import Cluster, connected
from workers.engines.velero.objects import outcome, relay
from workers.engines.velero.options import VeleroRestoreOptions

RESTORE_BUDGET = 4 * 3600.0
SCRATCH_HEALTH = 0.0
"""A scratch restore is checked for its objects, not for running pods."""


class RestoreResult(Model):
    """What a restore did."""

    model_config = ConfigDict(frozen=True)

    backup_id: str | None
    velero_backup: str
    restore: str
    phase: str
    items: int
    total_items: int
    errors: int
    warnings: int
    namespaces: tuple[str, ...]
    healthy: tuple[str, ...] = ()
    duration_seconds: float


def source_of(
    ctx: Context, cluster: Cluster, component: str, ref: str
) -> tuple[str, Manifest | None]:
    """The Velero backup ``ref`` names, and our manifest of it when we made it."""
    found = find_backup(ctx.repo.index(component), ref)
    if found is not None:
        manifest = ctx.repo.manifest(found.id)
        return str(manifest.details.get("velero_backup") or objects.velero_name(found.id)), manifest
    obj = cluster.find("backups", ref) if ref != "latest" else None
    if obj is None:
        raise NotFoundError(missing_backup(component, ref), see=("list", component))
    return ref, None


def restore(
    ctx: Context,
    component: str,
    ref: str = "latest",
    *,
    progress: Progress = no_progress,
    namespaces: str | tuple[str, ...] | list[str] = "",
    health_budget: str | float = "",
) -> RestoreResult:
    """Restore a backup through a Velero ``Restore``: whole, or only ``namespaces``."""
    try:
        options = VeleroRestoreOptions.model_validate(
            {"namespaces": namespaces, "health_budget": health_budget}
        )
    except ValueError as exc:
        raise UsageError(f"velero restore: {exc}") from None
    started = time.monotonic()
    with connected(ctx, component) as cluster:
        name, manifest = source_of(ctx, cluster, component, ref)
        covered = tuple(manifest.source.get("namespaces") or ()) if manifest else ()
        wanted = options.namespace_list()
        stray = [n for n in wanted if covered and n not in covered]
        if stray:
            raise UsageError(
                f"backup {name} does not hold namespace(s) {', '.join(stray)}",
                hint="it holds: " + ", ".join(covered),
            )
        result = run_restore(cluster, name, wanted, None, progress)
        restored = wanted or covered or tuple(result.namespaces)
        healthy: tuple[str, ...] = ()
        budget = options.budget_seconds()
        if budget > 0:
            ready = scaling.wait_healthy(cluster, restored, budget, progress=progress)
            healthy = tuple(w.key for w in ready)
    return RestoreResult(
        backup_id=manifest.id if manifest else None,
        velero_backup=name,
        restore=result.name,
        phase=result.phase,
        items=result.items_done,
        total_items=result.items_total,
        errors=result.errors,
        warnings=result.warnings,
        namespaces=restored,
        healthy=healthy,
        duration_seconds=round(time.monotonic() - started, 3),
    )


def run_restore(
    cluster: Cluster,
    backup_name: str,
    namespaces: tuple[str, ...],
    mapping: dict[str, str] | None,
    progress: Progress,
    label: str = "",
) -> objects.Outcome:
    """Create a Restore, watch it to its end, and fail unless it Completed."""
    name = f"{backup_name}-{secrets.token_hex(3)}"[:253]
    body = objects.restore_body(
        name, backup_name, cluster.namespace, namespaces=namespaces, mapping=mapping, label=label
    )
    cluster.create("restores", body)
    final = cluster.follow(
        "restores",
        name,
        until=lambda obj: outcome(obj).finished,
        seen=relay(progress, "restore"),
        budget=RESTORE_BUDGET,
    )
    result = outcome(final)
    if not result.succeeded:
        raise EngineError(
            f"velero restore {result.summary()}",
            hint=f"see `velero restore describe {name} --details`",
        )
    return result


def scratch_check(
    ctx: Context, cluster: Cluster, manifest: Manifest, progress: Progress
) -> dict[str, Any]:
    """Restore into scratch namespaces (namespaceMapping) and check every workload came back."""
    inventory: dict[str, list[str]] = dict(manifest.details.get("inventory") or {})
    if not inventory:
        raise IntegrityError(f"backup {manifest.id} records no namespaces to check")
    mapping = objects.scratch_mapping(tuple(inventory), objects.SCRATCH_SUFFIX)
    name = str(manifest.details.get("velero_backup") or objects.velero_name(manifest.id))
    leftover = [ns for ns in mapping.values() if cluster.workloads(ns)]
    if leftover:
        raise ConflictError(
            "scratch namespace(s) still hold workloads: " + ", ".join(leftover),
            hint="another verify is running, or one is being deleted; try again later",
        )
    try:
        result = run_restore(cluster, name, tuple(inventory), mapping, progress, label=manifest.id)
        missing = []
        restored = 0
        for namespace, keys in inventory.items():
            scratch = mapping[namespace]
            found = {w.key.split("/", 1)[1] for w in cluster.workloads(scratch)}
            for key in keys:
                if key.split("/", 1)[1] in found:
                    restored += 1
                else:
                    missing.append(key)
        if missing:
            raise IntegrityError(
                "the scratch restore lacks: " + ", ".join(missing[:10]),
                hint="the backup does not hold what it recorded; take a new one",
            )
    finally:
        for scratch in mapping.values():
            cluster.delete_namespace(scratch)
    return {"restored": restored, "scratch": sorted(mapping.values()), "restore": result.name}
