"""PostgreSQL's runbook operations: verify, restore a dump, PITR, drop a scratch database."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from workers import runbook_resources
from workers.context import Context
from workers.core import run_resources
from workers.core.errors import ConflictError, IntegrityError, UsageError
from workers.core.operations import PostgresRestoreOptions
from workers.core.run_resources import ResourceKind
from workers.engines.postgres import logical, queries
from workers.runbooks.operation import Call, Operation, component_of_kind, has_module
from workers.storage.refs import resolve

KIND = "postgres"
BARMAN_MODULE = "workers.engines.postgres.base_backups"


def _component(call: Call) -> str:
    return call.text("component") or KIND


def postgres_verify(call: Call) -> dict[str, Any]:
    """Verify a backup's checksums (``deep`` also restores it to a scratch database)."""
    component = _component(call)
    manifest = resolve(call.ctx.repo, component, call.text("backup", "latest") or "latest")
    manifest = logical.verify(
        call.ctx, component, manifest, deep=call.flag("deep"), progress=call.progress
    )
    record = manifest.verification
    state = record.state.value if record else "unknown"
    if state != "passed":
        raise IntegrityError(
            f"backup {manifest.id} failed verification: {record.detail if record else '?'}",
            hint="pick an older backup: --param backup=<id>",
        )
    return {"backup_id": manifest.id, "state": state, "detail": record.detail if record else ""}


def postgres_restore(call: Call) -> dict[str, Any]:
    """Restore a dump into a new database (or instance); never in place from a runbook."""
    if call.flag("in_place"):
        raise UsageError(
            "runbooks never restore in place", hint="restore into a new database or instance"
        )
    component = _component(call)
    ref = call.text("backup", "latest") or "latest"
    options = {
        name: call.text(name)
        for name in ("target_database", "target_dsn", "database")
        if call.text(name)
    }
    ledger = runbook_resources.Ledger(call.ctx, call.run, call.step_id)
    placements = runbook_resources.placements(call.ctx, component, ref, options)
    claimed = runbook_resources.claim_databases(ledger, component, placements, call.progress)
    try:
        chosen = PostgresRestoreOptions.model_validate(options)
        result = logical.restore(
            call.ctx, component, ref, progress=call.progress, **chosen.engine_options()
        )
    except ConflictError:
        for resource in claimed:  # someone else made it between our look and the engine's
            ledger.release(resource)
        raise
    data = result.model_dump(mode="json") if isinstance(result, BaseModel) else dict(result)
    databases = data.get("databases") or []
    outputs = {
        "backup_id": data.get("backup_id"),
        "databases": [d.get("database") for d in databases],
        "created_databases": [d.get("database") for d in databases if d.get("created")],
        "tables": sum(int(d.get("tables", 0)) for d in databases),
        "rows": sum(int(d.get("rows", 0)) for d in databases),
        "checksums_matched": bool(data.get("checksums_matched")),
        "seconds": data.get("duration_seconds"),
    }
    if not outputs["checksums_matched"]:
        mismatches = [m for d in databases for m in d.get("mismatches", [])]
        raise IntegrityError(
            "the restored data does not match the backup: " + "; ".join(mismatches[:3]),
            hint="the backup or the restore is damaged; try an older backup",
        )
    return outputs


def postgres_restore_pitr(call: Call) -> dict[str, Any]:
    """Base backup plus WAL replay to a time, into a new data directory and port."""
    component = _component(call)
    target = call.text("target_time")
    port = call.text("port")
    data_dir = call.text("data_dir")
    if data_dir:
        ledger = runbook_resources.Ledger(call.ctx, call.run, call.step_id)
        number = int(port) if port else None
        runbook_resources.claim_instance(ledger, component, data_dir, number, call.progress)
    result = logical.restore(
        call.ctx,
        component,
        call.text("backup", "latest") or "latest",
        progress=call.progress,
        base=True,
        target_time=datetime.fromisoformat(target) if target else None,
        data_dir=data_dir,
        port=int(port) if port else None,
    )
    data = result.model_dump(mode="json") if isinstance(result, BaseModel) else dict(result)
    outputs = {str(k): v for k, v in data.items() if isinstance(v, str | int | float | bool)}
    point = data.get("restore_point") or data.get("recovered_to") or data.get("target_time")
    if point:
        outputs["restore_point"] = str(point)
    return outputs


def postgres_drop_database(call: Call) -> dict[str, Any]:
    """Drop a scratch database, but only one this run created (or claimed to create)."""
    name = call.text("database")
    if not name:
        raise UsageError("drop-database needs a database")
    ledger = runbook_resources.Ledger(call.ctx, call.run, call.step_id)
    mine = [
        r
        for r in run_resources.outstanding(ledger.run.resources)
        if r.kind == ResourceKind.DATABASE and r.name == name
    ]
    created = {
        db for state in call.run.steps.values() for db in state.outputs.get("created_databases", [])
    }
    if not mine and name not in created:
        return {"dropped": [], "note": f"{name} was not created by this run; left alone"}
    for resource in mine:
        runbook_resources.drop_database(call.ctx, ledger.run, resource)
        ledger.removed(resource)
    if not mine:  # a run from before claims were recorded
        _drop_by_name(call, name)
    return {"dropped": [name]}


def _drop_by_name(call: Call, name: str) -> None:
    source = logical.source_of(call.ctx, _component(call))
    with contextlib.closing(queries.connect(source.maintenance())) as conn:
        queries.drop_database(conn, name)


def _configured(ctx: Context) -> bool:
    return component_of_kind(ctx, KIND) is not None


def _pitr_available(ctx: Context) -> bool:
    return _configured(ctx) and has_module(BARMAN_MODULE, "restore_pitr")


def _base_queue(ctx: Context, component: str) -> str:
    settings = ctx.settings.component(component)
    return str(getattr(settings, "base_queue", settings.queue))


OPERATIONS: dict[str, Operation] = {
    "postgres.verify": Operation(postgres_verify, True, _configured),
    "postgres.restore": Operation(postgres_restore, False, _configured),
    "postgres.restore-pitr": Operation(
        postgres_restore_pitr, False, _pitr_available, base_backup=True, queue=_base_queue
    ),
    "postgres.drop-database": Operation(postgres_drop_database, True, _configured),
}
"""The operations a runbook step may name for PostgreSQL."""
