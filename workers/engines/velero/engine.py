"""The Velero engine: what the contract (``workers.core.engine``) asks of a kind.

Imports stay light here (the registry loads this module in front doors); the modules that
load the kubernetes client are imported by the methods that use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.context import Context
from workers.core.config import ComponentSettings, Settings, VeleroComponent
from workers.core.engine import EngineDefaults
from workers.core.manifest import Manifest
from workers.core.operations import RestoreOptions
from workers.core.ports import Progress
from workers.core.retention import Deletion
from workers.engines.velero import health, runbook_ops
from workers.engines.velero.options import VeleroRestoreOptions
from workers.runbooks.call import Operation, component_of_kind


class VeleroEngine(EngineDefaults):
    """Kubernetes resources: Velero Backup, Restore and Schedule objects, and scale steps."""

    kind = "velero"
    config_model: type[ComponentSettings] = VeleroComponent
    restore_options: type[RestoreOptions] = VeleroRestoreOptions

    def backup(
        self, ctx: Context, component: str, *, base: bool = False, progress: Progress
    ) -> Manifest:
        """A Velero Backup of the component's namespaces, watched to its end."""
        from workers.engines.velero import backups

        return backups.backup(ctx, component, base=base, progress=progress)

    def verify(
        self, ctx: Context, component: str, manifest: Manifest, *, deep: bool, progress: Progress
    ) -> Manifest:
        """Velero's phase, errors and validation; ``deep`` restores into scratch namespaces."""
        from workers.engines.velero import backups

        return backups.verify(ctx, component, manifest, deep=deep, progress=progress)

    def restore(
        self,
        ctx: Context,
        component: str,
        ref: str,
        options: RestoreOptions,
        *,
        progress: Progress,
    ) -> Any:
        """A Velero Restore: whole, or the namespaces the options name."""
        from workers.engines.velero import restores

        return restores.restore(ctx, component, ref, progress=progress, **options.engine_options())

    def prune(self, ctx: Context, component: str, *, dry_run: bool) -> list[Deletion | str]:
        """Our records past retention; Velero expires its own backups by their TTL."""
        from workers.engines.velero import backups

        return list(backups.prune(ctx, component, dry_run=dry_run))

    def runbook_operations(self) -> Mapping[str, Operation]:
        """scale-down, scale-up, restore (with the health probe, or the drill's scratch one)."""

        def here(ctx: Context) -> bool:
            # A velero component that is off (no cluster here) leaves the steps to people.
            name = component_of_kind(ctx, self.kind)
            return name is not None and ctx.settings.component(name).enabled

        return {
            "velero.scale-down": Operation(runbook_ops.scale_down, True, here),
            "velero.scale-up": Operation(runbook_ops.scale_up, True, here),
            "velero.restore": Operation(runbook_ops.restore, False, here),
        }

    def unreachable(self, ctx: Context, component: str) -> str | None:
        """A socket connect to the kubeconfig's API server; None when it answers."""
        return health.unreachable(ctx, component)

    def config_problems(self, settings: Settings, component: str) -> list[tuple[str, str]]:
        """No namespaces, or names Kubernetes refuses."""
        return health.config_problems(settings, component)


ENGINE = VeleroEngine()
"""The one Velero engine the registry lists."""
