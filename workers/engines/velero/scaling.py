"""The consumers' scale steps: down to zero with the counts recorded, back up to exactly them.

The reference page scales back to 1; a workload that ran 3 replicas must come back with 3.
Scale-down records each workload's replicas twice: in the run's state (the step's outputs,
which scale-up reads) and on the workload itself as an annotation naming the run, written
before it is scaled. So a scale-down retried after a crash half-way reads the true count
from the annotation rather than recording the zero it left behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from workers.core.errors import EngineError, UsageError
from workers.core.ports import Progress, no_progress
from workers.engines.velero.cluster import Cluster, Workload

SCALED_BY = "kosmos-backup/scaled-down-by"
REPLICAS = "kosmos-backup/replicas-before"


def scale_down(
    cluster: Cluster, namespaces: Iterable[str], run: str, progress: Progress = no_progress
) -> dict[str, int]:
    """Scale every Deployment and StatefulSet in ``namespaces`` to 0; return the counts before."""
    recorded: dict[str, int] = {}
    for namespace in namespaces:
        for workload in cluster.workloads(namespace):
            before = _before(workload, run)
            recorded[workload.key] = before
            if workload.annotation(SCALED_BY) != run:
                cluster.annotate(workload, {SCALED_BY: run, REPLICAS: str(before)})
            if workload.replicas != 0:
                cluster.scale(workload.plural, workload.namespace, workload.name, 0)
            progress("scale down", note=f"{workload.key}: {before} -> 0")
    return recorded


def _before(workload: Workload, run: str) -> int:
    """The count to restore: an earlier attempt of this run's record, else the live count."""
    if workload.annotation(SCALED_BY) == run:
        noted = workload.annotation(REPLICAS) or ""
        if noted.isdigit():
            return int(noted)
    return workload.replicas


def recorded_on(cluster: Cluster, namespaces: Iterable[str], run: str) -> dict[str, int]:
    """The counts run ``run`` noted on the workloads it scaled down (its step may have failed)."""
    found = {}
    for namespace in namespaces:
        for workload in cluster.workloads(namespace):
            noted = workload.annotation(REPLICAS) or ""
            if workload.annotation(SCALED_BY) == run and noted.isdigit():
                found[workload.key] = int(noted)
    return found


def scale_up(
    cluster: Cluster, recorded: dict[str, int], progress: Progress = no_progress
) -> dict[str, int]:
    """Scale each recorded workload back to exactly its recorded count; return what was set."""
    if not recorded:
        raise UsageError(
            "no replica counts were recorded", hint="scale-up restores what scale-down recorded"
        )
    live = {}
    for namespace in sorted({key.split("/", 1)[0] for key in recorded}):
        live.update({w.key: w for w in cluster.workloads(namespace)})
    missing = sorted(key for key in recorded if key not in live)
    if missing:
        raise EngineError(
            "recorded workloads are gone: " + ", ".join(missing),
            hint="they were deleted since scale-down; recreate them or restore their objects",
        )
    for key, replicas in sorted(recorded.items()):
        workload = live[key]
        cluster.scale(workload.plural, workload.namespace, workload.name, replicas)
        if workload.annotation(SCALED_BY) is not None:
            cluster.annotate(workload, {SCALED_BY: None, REPLICAS: None})
        progress("scale up", note=f"{key}: -> {replicas}")
    return dict(sorted(recorded.items()))


def not_ready(workloads: Iterable[Workload]) -> list[str]:
    """``name ready/wanted`` for each workload whose ready replicas fall short."""
    return [
        f"{w.namespace}/{w.name} {w.ready}/{w.replicas} ready"
        for w in workloads
        if w.ready < w.replicas
    ]


def wait_healthy(
    cluster: Cluster,
    namespaces: Iterable[str],
    budget: float,
    *,
    poll: float = 1.0,
    progress: Progress = no_progress,
    clock: Callable[[], float] = time.monotonic,
) -> list[Workload]:
    """Wait until every workload in ``namespaces`` has ``readyReplicas == replicas``.

    Raises an EngineError naming the ones still not ready when ``budget`` seconds pass.
    """
    names = list(namespaces)
    deadline = clock() + budget
    while True:
        workloads = [w for namespace in names for w in cluster.workloads(namespace)]
        waiting = not_ready(workloads)
        if not waiting:
            return workloads
        if clock() >= deadline:
            raise EngineError(
                f"not healthy after {round(budget)}s: " + "; ".join(waiting[:10]),
                hint="see `kubectl describe` for why their pods are not ready",
            )
        progress("wait healthy", note=f"{len(waiting)} not ready: {waiting[0]}")
        time.sleep(min(poll, max(0.0, deadline - clock())))  # polling the API, not a test
