"""The restore job: guarded by an approval, then the engine's restore.

``authorize_restore`` verifies the approval again in the worker (bound to this exact plan,
signed, unexpired, single use) before anything is touched; ``restore_ended`` records the
result on the request and in the audit log (see workers.restore_guard).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from workers import engine, restore_guard
from workers.context import Context
from workers.core.errors import EngineError
from workers.core.operations import OperationRequest
from workers.jobs.runner import JobRun, execute

RESTORE_OPTIONS = (
    "target_database",
    "target_dsn",
    "database",
    "in_place",
    "with_globals",
    "base",
    "data_dir",
    "port",
)


def authorize_restore(ctx: Context, request: OperationRequest) -> None:
    """Verify and spend the job's approval in the worker (see workers.restore_guard)."""
    restore_guard.authorize_restore(ctx, request)


def run(payload: dict[str, Any]) -> dict[str, Any]:
    """RQ entry point: restore ``params.backup`` (default ``latest``) once authorized."""
    return execute(payload, _restore, lock=False)


def _restore(run: JobRun) -> dict[str, Any]:
    authorize_restore(run.ctx, run.request)
    component = run.request.component
    assert component is not None
    restore = getattr(engine, "restore", None)
    if restore is None:
        raise EngineError("restore is not available in this build", hint="upgrade the workers")
    params = run.request.params
    options = {name: params[name] for name in RESTORE_OPTIONS if name in params}
    if params.get("target_time"):
        options["target_time"] = datetime.fromisoformat(str(params["target_time"]))
    try:
        result = restore(
            run.ctx,
            component,
            str(params.get("backup") or "latest"),
            progress=run.progress,
            **options,
        )
    except BaseException as exc:
        restore_guard.restore_ended(run.ctx, run.request, error=exc)
        raise
    summary = _plain(result)
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
