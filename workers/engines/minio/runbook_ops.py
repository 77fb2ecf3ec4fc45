"""MinIO's runbook operations: restore (into a fresh endpoint, or a drill's scratch buckets)
and verify."""

from __future__ import annotations

from typing import Any

from workers.context import Context
from workers.core.errors import IntegrityError, UsageError
from workers.runbooks.operation import Call, Operation, component_of_kind
from workers.storage.refs import resolve

KIND = "minio"


def _component(call: Call) -> str:
    component = component_of_kind(call.ctx, KIND, call.text("component"))
    if component is None:
        raise UsageError("no minio component is configured")
    return component


def minio_restore(call: Call) -> dict[str, Any]:
    """Restore a snapshot: ``endpoint`` for a fresh MinIO, ``scratch`` for a drill."""
    from workers.engines.minio.options import MinioRestoreOptions
    from workers.engines.minio.restoration import restore

    options = MinioRestoreOptions(
        endpoint=call.text("endpoint"),
        target=call.text("target"),
        bucket=call.text("bucket"),
        scratch=call.flag("scratch"),
    )
    ref = call.text("backup", "latest") or "latest"
    result = restore(call.ctx, _component(call), ref, options, progress=call.progress)
    return {
        "backup_id": result.backup_id,
        "buckets": sorted(result.buckets),
        "objects": result.total["create"] + result.total["overwrite"] + result.total["unchanged"],
        "bytes": result.total["bytes"],
        "compared": result.compared,
        "checksums_matched": result.checksums_matched,
    }


def minio_verify(call: Call) -> dict[str, Any]:
    """Verify a snapshot's blobs (``deep`` re-hashes a sample)."""
    from workers.engines.minio import verification

    component = _component(call)
    manifest = resolve(call.ctx.repo, component, call.text("backup", "latest") or "latest")
    manifest = verification.verify(
        call.ctx, component, manifest, deep=call.flag("deep"), progress=call.progress
    )
    record = manifest.verification
    if record is None or record.state.value != "passed":
        raise IntegrityError(
            f"snapshot {manifest.id} failed verification: {record.detail if record else '?'}"
        )
    return {"backup_id": manifest.id, "state": record.state.value, "detail": record.detail}


def _configured(ctx: Context) -> bool:
    # A component that is off has no backups to restore: its steps go to people (or skip).
    component = component_of_kind(ctx, KIND)
    return component is not None and ctx.settings.component(component).enabled


OPERATIONS: dict[str, Operation] = {
    "minio.restore": Operation(minio_restore, False, _configured),
    "minio.verify": Operation(minio_verify, True, _configured),
}
