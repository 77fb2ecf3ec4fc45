"""The engine registry: component kind -> engine, one line per kind; one folder per kind.

This is the only place outside ``workers/engines/<kind>/`` that names a kind. A kind in the
configuration without a line here is valid config, shown "not built yet" in status, never
scheduled. Adding a kind: its folder (an engine implementing ``workers.core.engine.Engine``),
its line below, and its fixture in ``tests/engines/<kind>/contract.py``.
"""

from __future__ import annotations

from workers.context import Context
from workers.core.engine import Engine
from workers.core.errors import EngineError
from workers.engines.etcd.engine import ENGINE as ETCD
from workers.engines.infisical.engine import ENGINE as INFISICAL
from workers.engines.minio.engine import ENGINE as MINIO
from workers.engines.postgres.engine import ENGINE as POSTGRES
from workers.engines.velero.engine import ENGINE as VELERO
from workers.runbooks.call import Operation

KindEngine = Engine[Context, Operation]
"""An engine as the workers use it: on their Context, offering runbook Operations."""

ENGINES: dict[str, KindEngine] = {
    MINIO.kind: MINIO,
    POSTGRES.kind: POSTGRES,
    ETCD.kind: ETCD,
    VELERO.kind: VELERO,
    INFISICAL.kind: INFISICAL,
}
"""Every component kind with a built engine."""


def has_engine(kind: str) -> bool:
    """Whether backups of this component kind can run yet."""
    return kind in ENGINES


def engine_for(kind: str) -> KindEngine:
    """The engine of a component kind; EngineError when it is not built yet."""
    found = ENGINES.get(kind)
    if found is None:
        raise EngineError(
            f"the {kind} engine is not built yet",
            hint="it stays valid config and shows in status until its engine lands",
        )
    return found
