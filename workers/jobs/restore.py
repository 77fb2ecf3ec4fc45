"""The restore job: guarded by an approval, then the engine's restore.

``authorize_restore`` verifies the approval again in the worker (bound to this exact plan,
signed, unexpired, single use) before anything is touched; ``restore_ended`` records the
result on the request and in the audit log (see workers.restore.guard). Restored data that
differs from what the backup recorded fails the operation, as the command line's does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel

from workers import components as engine
from workers.context import Context
from workers.core.errors import IntegrityError
from workers.core.operations import OperationRequest, RestoreParams
from workers.jobs.runner import JobRun, execute
from workers.restore import guard as restore_guard


def authorize_restore(ctx: Context, request: OperationRequest) -> None:
    """Verify and spend the job's approval in the worker (see workers.restore.guard)."""
    restore_guard.authorize_restore(ctx, request)


def run(payload: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: restore one backup as RestoreParams say, once authorized."""
    return execute(payload, _restore, lock=False)


def _restore(run: JobRun) -> dict[str, Any]:
    authorize_restore(run.ctx, run.request)
    component = run.request.component
    assert component is not None
    params = RestoreParams.of(run.request)
    try:
        result = engine.restore(
            run.ctx,
            component,
            params.backup,
            progress=run.progress,
            **params.restore_kwargs(),
        )
    except BaseException as exc:
        restore_guard.restore_ended(run.ctx, run.request, error=exc)
        raise
    summary = _plain(result)
    if summary.get("checksums_matched") is False:
        differs = IntegrityError(
            "the restored data differs from what the backup recorded",
            hint="the restored database was kept for inspection; try an older backup",
        )
        restore_guard.restore_ended(run.ctx, run.request, summary=summary, error=differs)
        raise differs
    restore_guard.restore_ended(run.ctx, run.request, summary=summary)
    return summary


def _plain(result: Any) -> dict[str, Any]:
    """The engine's result as JSON-able data for the finished event."""
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(result).items()}
    if isinstance(result, dict):
        return {str(k): _jsonable(v) for k, v in result.items()}
    return {"result": _jsonable(result)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return str(value)
