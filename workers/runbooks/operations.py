"""The operations a runbook ``job`` step can name, and whether this build can automate them.

An operation is ``<engine>.<action>``. ``catalog.pick`` and ``run.teardown`` are built here;
each engine offers its own (``postgres.restore``, …: ``Engine.runbook_operations``);
``<kind>.restore`` / ``<kind>.verify`` for any other component kind dispatch to that kind's
engine as soon as it is registered. Until then those steps are manual (or skipped in a
drill): :func:`available` is what the loader asks. Operations that create something claim
it first (``workers.runbooks.resources``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from workers import components as engine
from workers.context import Context
from workers.core.catalog import good_backups
from workers.core.config import COMPONENT_KINDS
from workers.core.errors import EngineError, IntegrityError, NotFoundError, UsageError
from workers.engines import ENGINES, has_engine
from workers.runbooks.call import Call, Operation, component_of_kind

__all__ = ["Call", "Operation", "available", "execute", "lookup", "queue_of"]


def available(ctx: Context, name: str) -> bool:
    """Whether this build can run operation ``name`` with this configuration."""
    operation = lookup(name)
    return operation is not None and operation.available(ctx)


def lookup(name: str) -> Operation | None:
    """The operation called ``name`` (built in, or generic for a component kind)."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    for engine_kind in ENGINES.values():
        offered = engine_kind.runbook_operations().get(name)
        if offered is not None:
            return offered
    kind, _, action = name.partition(".")
    if kind in COMPONENT_KINDS and action in ("restore", "verify"):
        return Operation(
            run=_generic_restore if action == "restore" else _generic_verify,
            safe_to_repeat=action == "verify",
            available=lambda ctx: _has_engine(ctx, kind),
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
    operation = lookup(name)
    if operation is not None and operation.queue is not None:
        return operation.queue(ctx, component)
    return ctx.settings.component(component).queue


# -- availability ----------------------------------------------------------------------------


def _has_engine(ctx: Context, kind: str) -> bool:
    return has_engine(kind) and component_of_kind(ctx, kind) is not None


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


def run_teardown(call: Call) -> dict[str, Any]:
    """Remove everything the run created and still holds (databases, instances)."""
    from workers.runbooks import resources as runbook_resources

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


BUILT_IN: dict[str, Operation] = {
    "catalog.pick": Operation(pick, safe_to_repeat=True),
    "run.teardown": Operation(run_teardown, safe_to_repeat=True),
}
