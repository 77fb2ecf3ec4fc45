"""The runbook operations the Velero engine offers: scale steps, restore, and the drill's restore.

- ``velero.scale-down``: every Deployment and StatefulSet of ``namespaces`` to 0; the counts
  before are the step's outputs (the run's state) and an annotation on each workload.
- ``velero.scale-up``: back to exactly the counts the step ``from`` (``scale-down``) recorded
  (when it failed half-way, the counts it noted on the workloads of ``namespaces``), then,
  with ``health_budget``, wait until each is ready.
- ``velero.restore``: a Velero restore of ``backup`` (``namespaces`` for a part), then the
  health probe over what was restored; ``scratch`` (the drill) restores into mapped scratch
  namespaces instead, checks the workloads came back, and deletes them.

The kubernetes client is imported by the operations themselves: the registry (and so this
module) is loaded by front doors, which must stay light.
"""

from __future__ import annotations

from typing import Any

from workers.core.catalog import find_backup, missing_backup
from workers.core.durations import parse_duration
from workers.core.errors import NotFoundError, UsageError
from workers.runbooks.operation import Call

KIND = "velero"


def component(call: Call) -> str:
    """The velero component the step acts on: named, else the first configured."""
    named = call.text("component")
    for name, settings in call.ctx.settings.components.items():
        if settings.kind == KIND and (named is None or name == named):
            return name
    raise UsageError(f"no {KIND} component {named or ''} is configured".replace("  ", " "))


def namespaces_of(call: Call) -> tuple[str, ...]:
    """The ``namespaces`` parameter (a comma list or a list); empty when not given."""
    value = call.params.get("namespaces") or call.params.get("namespace") or ()
    names = value.split(",") if isinstance(value, str) else list(value)
    return tuple(name.strip() for name in names if str(name).strip())


def budget_of(call: Call) -> float:
    """The ``health_budget`` parameter in seconds (``10m``, ``90s``; empty means no wait)."""
    text = call.text("health_budget")
    if text is None:
        return 0.0
    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise UsageError(f"health_budget: {exc}") from None


def scale_down(call: Call) -> dict[str, Any]:
    """Record and zero the replicas of every workload in the step's namespaces."""
    names = namespaces_of(call)
    if not names:
        raise UsageError("scale-down needs namespaces", hint="e.g. namespaces: kosmos-agents")
    from workers.engines.velero import scaling
    from workers.engines.velero.cluster import connected

    with connected(call.ctx, component(call)) as cluster:
        recorded = scaling.scale_down(cluster, names, call.run.run_id, call.progress)
    return {"replicas": recorded, "namespaces": list(names), "workloads": len(recorded)}


def scale_up(call: Call) -> dict[str, Any]:
    """Scale back to the counts the ``from`` step recorded, then wait for them to be ready."""
    source = call.text("from", "scale-down") or "scale-down"
    state = call.run.steps.get(source)
    recorded = dict(state.outputs.get("replicas") or {}) if state else {}
    if not recorded and namespaces_of(call):
        recorded = _noted(call)  # the scale-down failed half-way: its notes on the workloads
    if not recorded:
        raise UsageError(
            f"step {source} recorded no replica counts",
            hint="scale-up restores what its scale-down step recorded; run that first",
        )
    counts = {str(key): int(value) for key, value in recorded.items()}
    budget = budget_of(call)
    from workers.engines.velero import scaling
    from workers.engines.velero.cluster import connected

    with connected(call.ctx, component(call)) as cluster:
        scaling.scale_up(cluster, counts, call.progress)
        if budget:
            namespaces = sorted({key.split("/", 1)[0] for key in counts})
            scaling.wait_healthy(cluster, namespaces, budget, progress=call.progress)
    return {"replicas": counts, "healthy": bool(budget), "workloads": len(counts)}


def _noted(call: Call) -> dict[str, int]:
    from workers.engines.velero import scaling
    from workers.engines.velero.cluster import connected

    with connected(call.ctx, component(call)) as cluster:
        return scaling.recorded_on(cluster, namespaces_of(call), call.run.run_id)


def restore(call: Call) -> dict[str, Any]:
    """A Velero restore (whole or ``namespaces``) and the health probe, or the drill's."""
    name = component(call)
    ref = call.text("backup", "latest") or "latest"
    if str(call.params.get("scratch", "")).lower() in ("1", "true", "yes"):
        return _scratch(call, name, ref)
    from workers.engines.velero import restores

    result = restores.restore(
        call.ctx,
        name,
        ref,
        progress=call.progress,
        namespaces=namespaces_of(call),
        health_budget=call.text("health_budget") or "",
    )
    return result.model_dump(mode="json")


def _scratch(call: Call, name: str, ref: str) -> dict[str, Any]:
    found = find_backup(call.ctx.repo.index(name), ref)
    if found is None:
        raise NotFoundError(missing_backup(name, ref), see=("list", name))
    manifest = call.ctx.repo.manifest(found.id)
    from workers.engines.velero import restores
    from workers.engines.velero.cluster import connected

    with connected(call.ctx, name) as cluster:
        checks = restores.scratch_check(call.ctx, cluster, manifest, call.progress)
    return {"backup_id": manifest.id, **checks}
