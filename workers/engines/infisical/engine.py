"""The secrets engine: what the contract (``workers.core.engine``) asks of the infisical kind.

Imports stay light (front doors load the registry): the SDK, pyrage and psycopg are loaded
by the modules each method calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.context import Context
from workers.core.config import ComponentSettings, InfisicalComponent, Settings
from workers.core.engine import EngineDefaults
from workers.core.errors import UsageError
from workers.core.manifest import Manifest
from workers.core.operations import RestoreOptions
from workers.core.ports import Progress
from workers.core.retention import Deletion
from workers.engines.infisical.component import KIND, recipient_problem
from workers.engines.infisical.options import InfisicalRestoreOptions
from workers.runbooks.call import Operation


class InfisicalEngine(EngineDefaults):
    """Secrets: daily age-encrypted exports, verify, import back, rotation after incidents."""

    kind = KIND
    config_model: type[ComponentSettings] = InfisicalComponent
    restore_options: type[RestoreOptions] = InfisicalRestoreOptions

    def backup(
        self, ctx: Context, component: str, *, base: bool = False, progress: Progress
    ) -> Manifest:
        """Export every configured project/environment into one encrypted document."""
        from workers.engines.infisical import export

        if base:
            raise UsageError("secrets have no base backups", hint="run the plain backup")
        return export.backup(ctx, component, progress=progress)

    def verify(
        self, ctx: Context, component: str, manifest: Manifest, *, deep: bool, progress: Progress
    ) -> Manifest:
        """Checksums and the age header; ``deep`` decrypts in memory and compares counts."""
        from workers.engines.infisical import verification

        return verification.verify(ctx, component, manifest, deep=deep, progress=progress)

    def restore(
        self,
        ctx: Context,
        component: str,
        ref: str,
        options: RestoreOptions,
        *,
        progress: Progress,
    ) -> Any:
        """Import one exported environment (dry run: only the counts)."""
        from workers.engines.infisical import restoration
        from workers.storage.refs import resolve

        chosen = InfisicalRestoreOptions.model_validate(options.model_dump())
        manifest = resolve(ctx.repo, component, ref)
        return restoration.restore(ctx, component, manifest, chosen, progress=progress)

    def prune(self, ctx: Context, component: str, *, dry_run: bool) -> list[Deletion | str]:
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

    def runbook_operations(self) -> Mapping[str, Operation]:
        """infisical.restore (full recovery, with rotation) and infisical.verify."""
        from workers.engines.infisical.runbook_ops import OPERATIONS

        return OPERATIONS

    def unreachable(self, ctx: Context, component: str) -> str | None:
        """A TCP connect to the API's host (never a login); None when it answers."""
        from workers.engines.infisical.api import unreachable

        return unreachable(ctx.settings.component(component))

    def config_problems(self, settings: Settings, component: str) -> list[tuple[str, str]]:
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


ENGINE = InfisicalEngine()
"""The one secrets engine the registry lists."""
