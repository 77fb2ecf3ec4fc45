"""The engine's face: what the front doors and the jobs call."""

from __future__ import annotations

import importlib
from typing import Any

from workers.context import Context
from workers.core.catalog import ComponentStatus, component_status, find_backup, missing_backup
from workers.core.errors import EngineError, NotFoundError, UsageError
from workers.core.manifest import BackupSummary, Manifest
from workers.core.ports import Progress, no_progress


def require_component(ctx: Context, name: str) -> str:
    """``name`` if configured, else a UsageError naming the valid ones."""
    if name not in ctx.settings.components:
        valid = ", ".join(ctx.settings.components)
        raise UsageError(f"unknown component {name!r}", hint=f"valid components: {valid}")
    return name


def status(
    ctx: Context, component: str | None = None, *, probe: bool = True
) -> list[ComponentStatus]:
    """Status of one or every configured component from the indexes (``probe``: and reach)."""
    names = [require_component(ctx, component)] if component else list(ctx.settings.components)
    now = ctx.clock()
    return [
        component_status(
            ctx.settings,
            name,
            ctx.repo.index(name),
            now,
            built=has_engine(ctx.settings.component(name).kind),
            unreachable=reachability(ctx, name) if probe else None,
        )
        for name in names
    ]


def reachability(ctx: Context, component: str) -> str | None:
    """Why the component's source cannot be reached now; None when it can, or nothing probes it."""
    settings = ctx.settings.component(component)
    if not settings.enabled or not has_engine(settings.kind):
        return None
    probe = getattr(_driver(settings.kind), "unreachable", None)
    return probe(ctx, component) if probe is not None else None


def config_problems(ctx: Context) -> list[tuple[str, str]]:
    """Settings that validate but cannot work (e.g. a store an engine cannot write to)."""
    found: list[tuple[str, str]] = []
    for name, component in ctx.settings.components.items():
        if component.enabled and has_engine(component.kind):
            check = getattr(_driver(component.kind), "config_problems", None)
            found += check(ctx.settings, name) if check is not None else []
    return found


def list_backups(ctx: Context, component: str) -> list[BackupSummary]:
    """The component's committed backups, newest first."""
    require_component(ctx, component)
    return list(reversed(ctx.repo.index(component).backups))


def resolve(ctx: Context, component: str, ref: str) -> Manifest:
    """The manifest for ``latest``, a backup id, or a unique id prefix."""
    require_component(ctx, component)
    found = find_backup(ctx.repo.index(component), ref)
    if found is None:
        raise NotFoundError(missing_backup(component, ref), see=("list", component))
    return ctx.repo.manifest(found.id)


def show(ctx: Context, backup_id: str) -> Manifest:
    """The full manifest of one backup."""
    return ctx.repo.manifest(backup_id)


def rebuild_catalog(ctx: Context) -> dict[str, int]:
    """Rebuild every component's index from manifests; return backups found per component."""
    return {name: len(ctx.repo.rebuild_index(name).backups) for name in ctx.settings.components}


def backup(
    ctx: Context, component: str, *, base: bool = False, progress: Progress = no_progress
) -> Manifest:
    """Run one backup of ``component`` in this process and return its committed manifest."""
    kind = ctx.settings.component(require_component(ctx, component)).kind
    driver = _driver(kind)
    return driver.backup(ctx, component, base=base, progress=progress)  # type: ignore[no-any-return]


def verify(
    ctx: Context,
    component: str,
    ref: str = "latest",
    *,
    deep: bool = False,
    progress: Progress = no_progress,
) -> Manifest:
    """Verify one backup and record the result; returns the manifest with its new record."""
    manifest = resolve(ctx, component, ref)
    driver = _driver(ctx.settings.component(component).kind)
    verified: Manifest = driver.verify(ctx, component, manifest, deep=deep, progress=progress)
    return verified


def restore(
    ctx: Context,
    component: str,
    ref: str = "latest",
    *,
    progress: Progress = no_progress,
    **options: Any,
) -> Any:
    """Restore a backup as the driver's ``options`` say (target, in-place, PITR time)."""
    driver = _driver(ctx.settings.component(require_component(ctx, component)).kind)
    return driver.restore(ctx, component, ref, progress=progress, **options)


def prune(ctx: Context, component: str | None = None, *, dry_run: bool = False) -> list[Any]:
    """Delete backups past retention (newest keep_last good always kept); return deletions."""
    from workers.storage.expiry import expire_backups

    names = [require_component(ctx, component)] if component else list(ctx.settings.components)
    deleted: list[Any] = []
    for name in names:
        settings = ctx.settings.component(name)
        try:
            driver_prune = getattr(_driver(settings.kind), "prune", None)
        except EngineError:
            driver_prune = None  # no engine yet: the plain policy still applies to its index
        if driver_prune is not None:
            deleted += driver_prune(ctx, name, dry_run=dry_run)
        else:
            deleted += expire_backups(
                ctx.repo,
                name,
                now=ctx.clock(),
                retention=settings.retention,
                keep_last=settings.keep_last,
                dry_run=dry_run,
            )
    return deleted


ENGINES = {"postgres": "workers.adapters.postgres"}
"""Component kinds with a built engine, and the module that drives each."""


def has_engine(kind: str) -> bool:
    """Whether backups of this component kind can run yet."""
    return kind in ENGINES


def _driver(kind: str) -> Any:
    """The engine module for a component kind; each exposes backup/verify/restore."""
    modules = ENGINES
    if kind not in modules:
        raise EngineError(
            f"the {kind} engine is not built yet",
            hint="it stays valid config and shows in status until its engine lands",
        )
    return importlib.import_module(modules[kind])
