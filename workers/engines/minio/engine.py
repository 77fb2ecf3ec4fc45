"""The MinIO engine: what the contract (``workers.core.engine``) asks of a kind.

Imports stay light here (the registry loads this module in front doors); boto3 and the
operations are imported by the methods that use them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from workers.context import Context
from workers.core.catalog import ComponentStatus, chosen_by_point
from workers.core.config import ComponentSettings, MinioComponent, Settings
from workers.core.engine import EngineDefaults, StatusFact
from workers.core.errors import UsageError
from workers.core.manifest import Manifest
from workers.core.operations import RestoreOptions
from workers.core.ports import Progress
from workers.core.restore_plan import RestorePlan
from workers.core.retention import Deletion
from workers.engines.minio.options import MinioRestoreOptions
from workers.runbooks.call import Operation

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class MinioEngine(EngineDefaults):
    """MinIO: incremental, content-addressed snapshots of buckets, restorable as of a time."""

    kind = "minio"
    config_model: type[ComponentSettings] = MinioComponent
    restore_options: type[RestoreOptions] = MinioRestoreOptions

    def backup(
        self, ctx: Context, component: str, *, base: bool = False, progress: Progress
    ) -> Manifest:
        """One incremental snapshot of the component's buckets."""
        if base:
            raise UsageError("minio has no base backups: every snapshot is complete")
        from workers.engines.minio import mirror

        return mirror.snapshot(ctx, component, progress=progress)

    def verify(
        self, ctx: Context, component: str, manifest: Manifest, *, deep: bool, progress: Progress
    ) -> Manifest:
        """Every referenced blob present with its size; ``deep`` re-hashes a sample."""
        from workers.engines.minio import verification

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
        """The snapshot ``ref`` (or the newest by ``point``) into its buckets or ``target``."""
        from workers.engines.minio import restoration

        if not isinstance(options, MinioRestoreOptions):
            options = MinioRestoreOptions.model_validate(options.model_dump())
        return restoration.restore(ctx, component, ref, options, progress=progress)

    def prune(self, ctx: Context, component: str, *, dry_run: bool) -> list[Deletion | str]:
        """Snapshots past the window (newest ``keep_last`` kept), then unreferenced blobs."""
        from workers.engines.minio import retention

        return list(retention.prune(ctx, component, dry_run=dry_run))

    def check_plan(self, ctx: Context, plan: RestorePlan, manifest: Manifest) -> RestorePlan:
        """``--to`` picks the snapshot by then; ``--target`` must be a bucket nobody reads live."""
        if plan.point is not None:
            found = chosen_by_point(ctx.repo.index(plan.component), plan.point)
            plan = plan.model_copy(update={"backup_id": found.id, "point": None})
            manifest = ctx.repo.manifest(found.id)
        target = plan.options.get("target")
        if plan.options.get("in_place") is True or plan.options.get("scratch") is True:
            return plan
        if not isinstance(target, str) or not _BUCKET.match(target):
            raise UsageError(
                f"say which bucket to restore into (not {plan.target!r})",
                hint="--target BUCKET: a new bucket name (3-63 of a-z 0-9 . -)",
            )
        settings = ctx.settings.component(plan.component)
        live = {*manifest.source.get("buckets", []), *getattr(settings, "buckets", ())}
        if target in live:
            raise UsageError(
                f"bucket {target} is a live bucket of {plan.component}",
                hint="restore into a new bucket and copy back what you need",
            )
        return plan

    def runbook_operations(self) -> Mapping[str, Operation]:
        """minio.restore (a parameter for the endpoint; ``scratch`` for drills), minio.verify."""
        from workers.engines.minio.runbook_ops import OPERATIONS

        return OPERATIONS

    def status_facts(self, status: ComponentStatus, now: datetime) -> list[StatusFact]:
        """Objects and bytes in the last snapshot, and how many changed since the one before."""
        facts = status.facts
        if "objects" not in facts:
            return []
        objects, changed = _count(facts["objects"]), _count(facts.get("changed_objects"))
        size = _size(_count(facts.get("bytes")))
        return [
            StatusFact(
                short=f"{objects} objects, {size}, {changed} changed",
                long=f"last snapshot: {objects} objects, {size}; {changed} changed since the one "
                "before",
            )
        ]

    def unreachable(self, ctx: Context, component: str) -> str | None:
        """Why the source endpoint cannot be listed (no credentials shown), or None."""
        from workers.engines.minio.health import unreachable

        return unreachable(ctx, component)

    def config_problems(self, settings: Settings, component: str) -> list[tuple[str, str]]:
        """Blobs live in object storage: a file:// store cannot hold them."""
        if settings.storage.scheme == "s3":
            return []
        return [
            (
                f"components.{component}: the minio engine needs an s3:// store, and "
                f"storage.url is {settings.storage.scheme}://",
                "set storage.url: s3://bucket/prefix (OSS, MinIO or AWS)",
            )
        ]


def _count(value: object) -> int:
    return int(value) if isinstance(value, int | float | str) else 0


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count} {unit}"
        count //= 1024
    return f"{count} TiB"


ENGINE = MinioEngine()
"""The one MinIO engine the registry lists."""
