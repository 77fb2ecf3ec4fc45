"""The secrets engine as the engine facade (``workers.engine``) drives it.

Imports stay light (front doors load this module): the SDK, pyrage and psycopg are loaded
by the modules each function calls.
"""

from __future__ import annotations

from typing import Any

from workers.context import Context
from workers.core.config import InfisicalComponent, Settings
from workers.core.errors import UsageError
from workers.core.manifest import Manifest
from workers.core.ports import Progress, no_progress
from workers.core.retention import Deletion
from workers.engines.infisical.component import recipient_problem


def backup(
    ctx: Context, component: str, *, base: bool = False, progress: Progress = no_progress
) -> Manifest:
    """Export every configured project/environment into one encrypted document."""
    from workers.engines.infisical import export

    if base:
        raise UsageError("secrets have no base backups", hint="run the plain backup")
    return export.backup(ctx, component, progress=progress)


def verify(
    ctx: Context,
    component: str,
    manifest: Manifest,
    *,
    deep: bool = False,
    progress: Progress = no_progress,
) -> Manifest:
    """Checksums and the age header; ``deep`` decrypts in memory and compares counts."""
    from workers.engines.infisical import verification

    return verification.verify(ctx, component, manifest, deep=deep, progress=progress)


def restore(
    ctx: Context, component: str, ref: str, *, progress: Progress = no_progress, **options: Any
) -> Any:
    """Import one exported environment (dry run: only the counts)."""
    from workers.engine import resolve
    from workers.engines.infisical import restoration

    chosen = restoration.ImportOptions.model_validate(options)
    manifest = resolve(ctx, component, ref)
    return restoration.restore(ctx, component, manifest, chosen, progress=progress)


def prune(ctx: Context, component: str, *, dry_run: bool = False) -> list[Deletion]:
    """Exports past retention (90 days by default), the newest good ones kept."""
    from workers.storage.expiry import expire_backups

    settings = ctx.settings.component(component)
    return list(
        expire_backups(
            ctx.repo,
            component,
            now=ctx.clock(),
            retention=settings.retention,
            keep_last=settings.keep_last,
            dry_run=dry_run,
        )
    )


def unreachable(ctx: Context, component: str) -> str | None:
    """A TCP connect to the API's host (never a login); None when it answers."""
    from workers.engines.infisical.api import unreachable as probe

    return probe(ctx.settings.component(component))


def config_problems(settings: Settings, component: str) -> list[tuple[str, str]]:
    """No recipients (exports are always encrypted), no credentials, no projects."""
    found = []
    problem = recipient_problem(settings)
    if problem:
        found.append(("encryption.recipients", problem))
    own = settings.component(component)
    if isinstance(own, InfisicalComponent):
        if own.client_id is None or own.client_secret is None:
            found.append((f"components.{component}.client_id", "universal auth is not set"))
        if not own.projects:
            found.append((f"components.{component}.projects", "no project to export"))
    return found
