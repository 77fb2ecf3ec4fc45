"""What the front doors and the jobs call, by component name; each kind's engine does the work.

The engine of a component's kind comes from the registry (``workers.engines``).
"""

from __future__ import annotations

from datetime import datetime
from types import ModuleType
from typing import Any

from workers.context import Context
from workers.core.catalog import ComponentStatus, component_status
from workers.core.engine import StatusFact
from workers.core.errors import UsageError
from workers.core.manifest import BackupSummary, Manifest
from workers.core.ports import Progress, no_progress
from workers.engines import engine_for, has_engine
from workers.engines import wal_shipping as _wal_shipping


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
    return engine_for(settings.kind).unreachable(ctx, component)


def config_problems(ctx: Context) -> list[tuple[str, str]]:
    """Settings that validate but cannot work (e.g. a store an engine cannot write to)."""
    found: list[tuple[str, str]] = []
    for name, component in ctx.settings.components.items():
        if component.enabled and has_engine(component.kind):
            found += engine_for(component.kind).config_problems(ctx.settings, name)
    return found


def list_backups(ctx: Context, component: str) -> list[BackupSummary]:
    """The component's committed backups, newest first."""
    require_component(ctx, component)
    return list(reversed(ctx.repo.index(component).backups))


def resolve(ctx: Context, component: str, ref: str) -> Manifest:
    """The manifest for ``latest``, a backup id, or a unique id prefix."""
    from workers.storage.refs import resolve as resolve_ref

    return resolve_ref(ctx.repo, require_component(ctx, component), ref)


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
    return engine_for(kind).backup(ctx, component, base=base, progress=progress)


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
    chosen = engine_for(ctx.settings.component(component).kind)
    return chosen.verify(ctx, component, manifest, deep=deep, progress=progress)


def restore(
    ctx: Context,
    component: str,
    ref: str = "latest",
    *,
    progress: Progress = no_progress,
    **options: Any,
) -> Any:
    """Restore a backup as the driver's ``options`` say (target, in-place, PITR time)."""
    chosen = engine_for(ctx.settings.component(require_component(ctx, component)).kind)
    chosen_options = chosen.restore_options.model_validate(options)
    return chosen.restore(ctx, component, ref, chosen_options, progress=progress)


def prune(ctx: Context, component: str | None = None, *, dry_run: bool = False) -> list[Any]:
    """Delete backups past retention (newest keep_last good always kept); return deletions."""
    from workers.storage.expiry import expire_backups

    names = [require_component(ctx, component)] if component else list(ctx.settings.components)
    deleted: list[Any] = []
    for name in names:
        settings = ctx.settings.component(name)
        if has_engine(settings.kind):
            deleted += engine_for(settings.kind).prune(ctx, name, dry_run=dry_run)
        else:  # no engine yet: the plain policy still applies to its index
            deleted += expire_backups(
                ctx.repo,
                name,
                now=ctx.clock(),
                retention=settings.retention,
                keep_last=settings.keep_last,
                dry_run=dry_run,
            )
    return deleted


def status_facts(row: ComponentStatus, now: datetime) -> list[StatusFact]:
    """The lines the component's engine adds to the status board (none when not built)."""
    return engine_for(row.kind).status_facts(row, now) if has_engine(row.kind) else []


def index_version(ctx: Context, component: str) -> tuple[int, str] | None:
    """Size and modification time of a component's stored catalog: one listing, no download."""
    from workers.storage.repository import index_key

    key = index_key(component)
    for info in ctx.repo.store.list_objects(key):
        if info.key == key:
            return info.size, info.modified.isoformat()
    return None


def wal_shipping() -> ModuleType:
    """What archive_command and restore_command run (wal-push, wal-fetch, the archiver)."""
    return _wal_shipping()
