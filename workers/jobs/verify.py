"""The verify job: check one backup (checksums, archives; ``deep`` restores and compares).

A verification that finds damage fails the operation (IntegrityError, never retried), as the
command line's ``--local`` does: the record stays on the manifest, and ``--wait`` exits 1.
"""

from __future__ import annotations

from typing import Any

from workers import components as engine
from workers.core.errors import EngineError, IntegrityError
from workers.core.manifest import VerificationState
from workers.core.operations import VerifyParams
from workers.jobs.runner import JobRun, execute


def run(payload: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: verify one backup of the request's component (VerifyParams)."""
    return execute(payload, _verify, lock=True)


def _verify(run: JobRun) -> dict[str, Any]:
    component = run.request.component
    assert component is not None
    verify = getattr(engine, "verify", None)
    if verify is None:
        raise EngineError("verify is not available in this build", hint="upgrade the workers")
    params = VerifyParams.of(run.request)
    manifest = verify(run.ctx, component, params.backup, deep=params.deep, progress=run.progress)
    record = manifest.verification
    if record is None or record.state != VerificationState.PASSED:
        raise IntegrityError(
            f"verification of {manifest.id} failed",
            hint=record.detail if record else "no verification record was written",
        )
    return {
        "backup_id": manifest.id,
        "verification": record.state.value,
        "deep": bool(record.deep),
        "detail": record.detail,
    }
