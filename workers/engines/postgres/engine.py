"""The PostgreSQL engine: what the contract (``workers.core.engine``) asks of a kind.

Imports stay light here (the registry loads this module in front doors); the drivers, which
load psycopg and barman, are imported by the methods that use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from workers.context import Context
from workers.core.catalog import ComponentStatus
from workers.core.config import ComponentSettings, PostgresComponent, Settings
from workers.core.durations import humanize
from workers.core.engine import EngineDefaults, StatusFact
from workers.core.manifest import Manifest
from workers.core.operations import OperationRequest, PostgresRestoreOptions, RestoreOptions
from workers.core.ports import Progress
from workers.core.retention import Deletion
from workers.core.rpo import wal_archive_lag
from workers.runbooks.call import Operation


class PostgresEngine(EngineDefaults):
    """PostgreSQL: logical dumps, and base backups with WAL for point-in-time recovery.

    Its restore plan checks (the target is not the live source) are still in
    ``workers.restore.planning``, so ``check_plan`` and ``recheck_plan`` are the defaults.
    """

    kind = "postgres"
    config_model: type[ComponentSettings] = PostgresComponent
    base_backups = True
    restore_options: type[RestoreOptions] = PostgresRestoreOptions

    def queues(self, component: ComponentSettings) -> list[str]:
        """The component's queue, and the base-backup queue beside the data directory."""
        return [component.queue, _settings(component).base_queue]

    def queue_for(self, component: ComponentSettings, request: OperationRequest) -> str:
        """Base backups and PITR run beside the data directory; dumps anywhere."""
        return _settings(component).base_queue if request.base else component.queue

    def backup_tracks(self, component: ComponentSettings) -> list[bool]:
        """Dumps always; base backups too when continuous archiving is on."""
        return [False, True] if _settings(component).continuous else [False]

    def backup(
        self, ctx: Context, component: str, *, base: bool = False, progress: Progress
    ) -> Manifest:
        """A logical dump of the configured databases, or (``base``) a base backup."""
        from workers.engines.postgres import logical

        return logical.backup(ctx, component, base=base, progress=progress)

    def verify(
        self, ctx: Context, component: str, manifest: Manifest, *, deep: bool, progress: Progress
    ) -> Manifest:
        """Checksums and archive listing; ``deep`` restores into scratch and compares."""
        from workers.engines.postgres import logical

        return logical.verify(ctx, component, manifest, deep=deep, progress=progress)

    def restore(
        self,
        ctx: Context,
        component: str,
        ref: str,
        options: RestoreOptions,
        *,
        progress: Progress,
    ) -> Any:
        """A dump into a new database (or in place), or PITR into a new instance."""
        from workers.engines.postgres import logical

        return logical.restore(ctx, component, ref, progress=progress, **options.engine_options())

    def prune(self, ctx: Context, component: str, *, dry_run: bool) -> list[Deletion | str]:
        """Dumps past retention, then barman's own prune of base backups and WAL."""
        from workers.engines.postgres import logical

        return logical.prune(ctx, component, dry_run=dry_run)

    def runbook_operations(self) -> Mapping[str, Operation]:
        """verify, restore, restore-pitr and drop-database."""
        from workers.engines.postgres.runbook_ops import OPERATIONS

        return OPERATIONS

    def status_facts(self, status: ComponentStatus, now: datetime) -> list[StatusFact]:
        """The WAL archive's lag: how far the newest archived WAL is behind now."""
        lag = wal_archive_lag(status, now)
        if lag is None:
            return [
                StatusFact(short="no WAL archived", long="WAL archive lag: no WAL archived yet")
            ]
        shown = humanize(lag)
        return [StatusFact(short=f"WAL lag {shown}", long=f"WAL archive lag: {shown}")]

    def unreachable(self, ctx: Context, component: str) -> str | None:
        """A socket connect to the DSN's host (never a login); None when it answers."""
        # The driver loads with the board's first look, as it always did: a first /restore
        # must not pay for psycopg and the drivers inside its chat answer's deadline.
        from workers.engines.postgres import health, logical  # noqa: F401

        return health.unreachable(ctx, component)

    def config_problems(self, settings: Settings, component: str) -> list[tuple[str, str]]:
        """A continuous archive that cannot work (e.g. on a local store)."""
        from workers.engines.postgres import health

        return health.config_problems(settings, component)


def _settings(component: ComponentSettings) -> PostgresComponent:
    if not isinstance(component, PostgresComponent):
        raise TypeError(f"a {type(component).__name__} is not a PostgreSQL component")
    return component


ENGINE = PostgresEngine()
"""The one PostgreSQL engine the registry lists."""
