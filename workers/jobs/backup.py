"""The backup job: one backup of one component, reported as events."""

from __future__ import annotations

from typing import Any

from workers import components
from workers.core.operations import BackupParams
from workers.jobs.runner import JobRun, execute


def run(payload: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: back up the request's component (BackupParams)."""
    return execute(payload, _backup, lock=True)


def _backup(run: JobRun) -> dict[str, Any]:
    component = run.request.component
    assert component is not None
    params = BackupParams.of(run.request)
    manifest = components.backup(run.ctx, component, base=params.base, progress=run.progress)
    return {
        "backup_id": manifest.id,
        "kind": manifest.kind,
        "size": manifest.total_size,
        "duration_seconds": round(manifest.duration_seconds, 3),
        "objects": len(manifest.objects),
    }
