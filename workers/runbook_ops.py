"""The operations a runbook ``job`` step can name, and whether this build can automate them.

An operation is ``<engine>.<action>``. ``catalog.pick``, ``run.teardown`` and the PostgreSQL
operations are built here; ``<kind>.restore`` / ``<kind>.verify`` for any component kind
(etcd, minio, velero, infisical) dispatch to that kind's engine module as soon as it exists
and exposes the action, and ``kubernetes.scale`` to ``workers.adapters.kubernetes.scale``.
Until then those steps are manual (or skipped in a drill): :func:`available` is what the
loader asks. Operations that create something claim it first (``workers.runbook_resources``).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from workers import engine
from workers.context import Context
from workers.core import run_resources
from workers.core.catalog import good_backups
from workers.core.config import COMPONENT_KINDS
from workers.core.errors import (
    ConflictError,
    EngineError,
    IntegrityError,
    NotFoundError,
    UsageError,
)
from workers.core.ports import Progress
from workers.core.run_resources import ResourceKind
from workers.core.runbook_run import RunState

KUBERNETES_MODULE = "workers.adapters.kubernetes"
BARMAN_MODULE = "workers.adapters.barman"


@dataclass(frozen=True)
class Call:
    """What an operation gets: the context, the run, its step and the resolved params."""

    ctx: Context
    run: RunState
    step_id: str
    operation: str
    params: dict[str, Any]
    progress: Progress

    def text(self, name: str, default: str | None = None) -> str | None:
        """A parameter as text; empty strings count as not given."""
        value = self.params.get(name, default)
        return None if value in (None, "") else str(value)


@dataclass(frozen=True)
class Operation:
    """One automatable operation."""

    run: Callable[[Call], dict[str, Any]]
    safe_to_repeat: bool
    available: Callable[[Context], bool] = lambda ctx: True
    base_backup: bool = False
    """Restores a base backup into a new instance: ``latest`` means the newest base backup."""


def available(ctx: Context, name: str) -> bool:
    """Whether this build can run operation ``name`` with this configuration."""
    operation = lookup(name)
    return operation is not None and operation.available(ctx)


def lookup(name: str) -> Operation | None:
    """The operation called ``name`` (built in, or generic for a component kind)."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    kind, _, action = name.partition(".")
    if kind in COMPONENT_KINDS and action in ("restore", "verify"):
        return Operation(
            run=_generic_restore if action == "restore" else _generic_verify,
            safe_to_repeat=action == "verify",
            available=lambda ctx: _has_engine(ctx, kind, action),
        )
    return None


def restores_base_backup(name: str) -> bool:
    """Whether operation ``name`` restores a base backup (so its plan must choose one)."""
    operation = lookup(name)
    return operation is not None and operation.base_backup


def safe_to_repeat(name: str) -> bool:
    """Whether running ``name`` again after a crash can do no harm."""
    operation = lookup(name)
    return operation.safe_to_repeat if operation else False


def execute(call: Call, name: str) -> dict[str, Any]:
    """Run operation ``name``; its outputs are JSON data for later steps and the report."""
    operation = lookup(name)
    if operation is None or not operation.available(call.ctx):
        raise EngineError(
            f"operation {name} is not available in this build",
            hint="this step is done by hand until its engine lands",
        )
    return operation.run(call)


def queue_of(ctx: Context, name: str, params: dict[str, Any]) -> str | None:
    """The queue a step must run on: beside the data for base restores, etcd on its node."""
    kind = name.split(".", 1)[0]
    component = component_of_kind(ctx, kind, params.get("component") or None)
    if component is None:
        return None
    settings = ctx.settings.component(component)
    if name == "postgres.restore-pitr":
        return str(getattr(settings, "base_queue", settings.queue))
    return settings.queue


# -- availability ----------------------------------------------------------------------------


def component_of_kind(ctx: Context, kind: str, named: str | None = None) -> str | None:
    """The component to act on: the named one, else the first configured of ``kind``."""
    if named:
        component = ctx.settings.components.get(named)
        return named if component is not None and component.kind == kind else None
    return next((n for n, c in ctx.settings.components.items() if c.kind == kind), None)


def _driver(kind: str) -> Any:
    # The engine facade's own table of driver modules decides what exists.
    return engine._driver(kind)


def _has_engine(ctx: Context, kind: str, action: str) -> bool:
    if component_of_kind(ctx, kind) is None:
        return False
    try:
        return hasattr(_driver(kind), action)
    except (EngineError, ImportError):
        return False


def _has_module(module: str, attribute: str) -> bool:
    # Asked on every /dr start: an already imported module answers exactly; otherwise its
    # presence counts (importing barman just to look would cost a chat answer a second).
    loaded = sys.modules.get(module)
    if loaded is not None:
        return hasattr(loaded, attribute)
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


# -- catalog ---------------------------------------------------------------------------------


def pick(call: Call) -> dict[str, Any]:
    """Choose a backup (``latest`` good one, optionally of one kind) and say how old it is."""
    component = call.text("component") or "postgres"
    engine.require_component(call.ctx, component)
    ref = call.text("backup", "latest") or "latest"
    kind = call.text("kind")
    if ref == "latest" and kind:
        found = [b for b in good_backups(call.ctx.repo.index(component)) if b.kind == kind]
        if not found:
            raise NotFoundError(
                f"{component}: no good {kind} backup yet",
                hint="run:",
                see=("backup", component),
            )
        manifest = call.ctx.repo.manifest(found[-1].id)
    else:
        manifest = engine.resolve(call.ctx, component, ref)
    # A dump holds the data as of its snapshot, taken when it started; a base backup with
    # WAL reaches further, which the restore step reports itself.
    point = manifest.started_at
    return {
        "backup_id": manifest.id,
        "component": component,
        "kind": manifest.kind,
        "restore_point": point.isoformat(),
        "finished_at": manifest.finished_at.isoformat(),
        "size": manifest.total_size,
        "age_seconds": round((call.ctx.clock() - point).total_seconds(), 1),
        "verified": manifest.verdict.state.value if manifest.verdict else None,
    }


# -- PostgreSQL ------------------------------------------------------------------------------


def postgres_verify(call: Call) -> dict[str, Any]:
    """Verify a backup's checksums (``deep`` also restores it to a scratch database)."""
    component = call.text("component") or "postgres"
    ref = call.text("backup", "latest") or "latest"
    deep = str(call.params.get("deep", "")).lower() in ("1", "true", "yes")
    manifest = engine.verify(call.ctx, component, ref, deep=deep, progress=call.progress)
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
    if str(call.params.get("in_place", "")).lower() in ("1", "true", "yes"):
        raise UsageError(
            "runbooks never restore in place", hint="restore into a new database or instance"
        )
    component = call.text("component") or "postgres"
    ref = call.text("backup", "latest") or "latest"
    options = {
        name: call.text(name)
        for name in ("target_database", "target_dsn", "database")
        if call.text(name)
    }
    from workers import runbook_resources

    ledger = runbook_resources.Ledger(call.ctx, call.run, call.step_id)
    placements = runbook_resources.placements(call.ctx, component, ref, options)
    claimed = runbook_resources.claim_databases(ledger, component, placements, call.progress)
    try:
        result = engine.restore(call.ctx, component, ref, progress=call.progress, **options)
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
    component = call.text("component") or "postgres"
    target = call.text("target_time")
    port = call.text("port")
    data_dir = call.text("data_dir")
    if data_dir:
        from workers import runbook_resources

        ledger = runbook_resources.Ledger(call.ctx, call.run, call.step_id)
        number = int(port) if port else None
        runbook_resources.claim_instance(ledger, component, data_dir, number, call.progress)
    result = engine.restore(
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
    from workers import runbook_resources

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
    from workers.adapters import pg_catalog
    from workers.adapters.postgres import source_of

    source = source_of(call.ctx, call.text("component") or "postgres")
    with contextlib.closing(pg_catalog.connect(source.maintenance())) as conn:
        pg_catalog.drop_database(conn, name)


def run_teardown(call: Call) -> dict[str, Any]:
    """Remove everything the run created and still holds (databases, instances)."""
    from workers import runbook_resources

    return runbook_resources.teardown(call.ctx, call.run, call.step_id)


# -- other engines, as they land -------------------------------------------------------------


def _generic_restore(call: Call) -> dict[str, Any]:
    kind = call.operation.split(".")[0]
    component = component_of_kind(call.ctx, kind, call.text("component"))
    if component is None:
        raise UsageError(f"no {kind} component is configured")
    options = {k: v for k, v in call.params.items() if k not in ("component", "backup")}
    result = engine.restore(
        call.ctx,
        component,
        call.text("backup", "latest") or "latest",
        progress=call.progress,
        **options,
    )
    data = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
    return dict(data) if isinstance(data, dict) else {"result": str(data)}


def _generic_verify(call: Call) -> dict[str, Any]:
    kind = call.operation.split(".")[0]
    component = component_of_kind(call.ctx, kind, call.text("component"))
    if component is None:
        raise UsageError(f"no {kind} component is configured")
    manifest = engine.verify(
        call.ctx, component, call.text("backup", "latest") or "latest", progress=call.progress
    )
    record = manifest.verification
    if record is None or record.state.value != "passed":
        raise IntegrityError(f"backup {manifest.id} failed verification")
    return {"backup_id": manifest.id, "state": record.state.value, "detail": record.detail}


def kubernetes_scale(call: Call) -> dict[str, Any]:
    """Scale deployments through the Kubernetes engine once it exists."""
    module = importlib.import_module(KUBERNETES_MODULE)
    result = module.scale(
        call.ctx,
        namespace=call.text("namespace"),
        replicas=int(call.params.get("replicas", 0)),
        deployments=call.params.get("deployments", "all"),
    )
    return dict(result or {})


BUILT_IN: dict[str, Operation] = {
    "catalog.pick": Operation(pick, safe_to_repeat=True),
    "postgres.verify": Operation(
        postgres_verify, True, lambda ctx: _has_engine(ctx, "postgres", "verify")
    ),
    "postgres.restore": Operation(
        postgres_restore, False, lambda ctx: _has_engine(ctx, "postgres", "restore")
    ),
    "postgres.restore-pitr": Operation(
        postgres_restore_pitr,
        False,
        lambda ctx: (
            _has_engine(ctx, "postgres", "restore") and _has_module(BARMAN_MODULE, "restore_pitr")
        ),
        base_backup=True,
    ),
    "postgres.drop-database": Operation(
        postgres_drop_database, True, lambda ctx: component_of_kind(ctx, "postgres") is not None
    ),
    "run.teardown": Operation(run_teardown, safe_to_repeat=True),
    "kubernetes.scale": Operation(
        kubernetes_scale, False, lambda ctx: _has_module(KUBERNETES_MODULE, "scale")
    ),
}
