"""The K3s etcd engine: what the contract (``workers.core.engine``) asks of a kind.

Imports stay light here (the registry loads this module in front doors); the drivers are
imported by the methods that use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workers.context import Context
from workers.core.catalog import chosen_by_point
from workers.core.config import ComponentSettings, EtcdComponent, Settings
from workers.core.engine import EngineDefaults
from workers.core.errors import PermissionDenied, UsageError
from workers.core.manifest import Manifest
from workers.core.operations import RestoreOptions
from workers.core.ports import Progress
from workers.core.restore_plan import RestorePlan
from workers.core.retention import Deletion
from workers.engines.etcd.options import EtcdRestoreOptions
from workers.runbooks.call import Operation


class EtcdEngine(EngineDefaults):
    """K3s etcd: a snapshot every 6 hours, verified by serving it, restored to a new data dir.

    Everything (snapshots, their checks, restores) runs on the component's queue, served by
    a worker on the K3s server node (``kosmos-etcd``).
    """

    kind = "etcd"
    config_model: type[ComponentSettings] = EtcdComponent
    restore_options: type[RestoreOptions] = EtcdRestoreOptions

    def backup(
        self, ctx: Context, component: str, *, base: bool = False, progress: Progress
    ) -> Manifest:
        """One snapshot (k3s etcd-snapshot on a K3s server, else etcdctl), uploaded."""
        if base:
            raise UsageError("etcd has no base backups", hint="a snapshot is the whole store")
        from workers.engines.etcd import backup

        return backup.backup(ctx, component, progress=progress)

    def verify(
        self, ctx: Context, component: str, manifest: Manifest, *, deep: bool, progress: Progress
    ) -> Manifest:
        """sha256 and ``snapshot status``; ``deep`` serves it on loopback and compares keys."""
        from workers.engines.etcd import verify

        return verify.verify(ctx, component, manifest, deep=deep, progress=progress)

    def restore(
        self,
        ctx: Context,
        component: str,
        ref: str,
        options: RestoreOptions,
        *,
        progress: Progress,
    ) -> Any:
        """Download and check; then a new data dir, a K3s reset, or a scratch drill."""
        from workers.engines.etcd import restore

        return restore.restore(ctx, component, ref, progress=progress, **options.engine_options())

    def prune(self, ctx: Context, component: str, *, dry_run: bool) -> list[Deletion | str]:
        """Snapshots past retention, never the newest ``keep_last`` good."""
        from workers.engines.etcd import backup

        return list(backup.prune(ctx, component, dry_run=dry_run))

    def check_plan(self, ctx: Context, plan: RestorePlan, manifest: Manifest) -> RestorePlan:
        """``--to`` picks the snapshot by then; the target data directory must be new or empty."""
        if plan.point is not None:
            found = chosen_by_point(ctx.repo.index(plan.component), plan.point)
            plan = plan.model_copy(update={"backup_id": found.id, "point": None})
        if plan.options.get("scratch") is True or plan.options.get("k3s_reset") is True:
            return plan
        _new_data_dir(plan.target)
        return plan

    def recheck_plan(self, ctx: Context, plan: RestorePlan) -> None:
        """The target data directory is still new when the worker starts."""
        try:
            _new_data_dir(plan.target)
        except UsageError as exc:
            raise PermissionDenied(
                exc.message, hint="ask for a restore into a new directory"
            ) from None

    def runbook_operations(self) -> Mapping[str, Operation]:
        """fetch (download and check), restore (a new data dir or a drill) and verify."""
        from workers.engines.etcd.runbook_ops import OPERATIONS

        return OPERATIONS

    def unreachable(self, ctx: Context, component: str) -> str | None:
        """``etcdctl endpoint status`` on each endpoint; None when one answers."""
        from workers.engines.etcd import health

        return health.unreachable(ctx, component)

    def config_problems(self, settings: Settings, component: str) -> list[tuple[str, str]]:
        """TLS files that are named but missing on this machine."""
        from workers.engines.etcd import health

        return health.config_problems(settings, component)


def _new_data_dir(target: str) -> None:
    path = Path(target)
    if not path.is_absolute():
        raise UsageError(f"{target!r} is not an absolute path", hint="--target /var/lib/etcd-new")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(
            f"{target} is not empty: a restore never writes over a data directory",
            hint="name a new directory with --target",
        )


ENGINE = EtcdEngine()
"""The one etcd engine the registry lists."""
