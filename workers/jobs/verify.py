"""The verify job: check one backup (checksums, archives; ``deep`` restores and compares)."""

from __future__ import annotations

from typing import Any

from workers import engine
from workers.core.errors import EngineError
from workers.jobs.runner import JobRun, execute


def run(payload: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: verify ``params.backup`` (default ``latest``) of the component."""
    return execute(payload, _verify, lock=True)


def _verify(run: JobRun) -> dict[str, Any]:
    component = run.request.component
    assert component is not None
    verify = getattr(engine, "verify", None)
    if verify is None:
        raise EngineError("verify is not available in this build", hint="upgrade the workers")
    params = run.request.params
    manifest = verify(
        run.ctx,
        component,
        str(params.get("backup") or "latest"),
        deep=bool(params.get("deep")),
        progress=run.progress,
    )
    record = manifest.verification
    return {
        "backup_id": manifest.id,
        "verification": record.state.value if record else "unknown",
        "deep": bool(record.deep) if record else False,
        "detail": record.detail if record else "",
    }
