"""The engine registry: component kind -> engine, one line per kind; one folder per kind.

This is the only place outside ``workers/engines/<kind>/`` that names a kind. A kind in the
configuration without a line here is valid config, shown "not built yet" in status, never
scheduled. Adding a kind: its folder (an engine implementing ``workers.core.engine.Engine``
as ``ENGINE`` in its ``engine`` module), its line below, and its fixture in
``tests/engines/<kind>/contract.py``.

Each line names the engine's module, imported the first time that kind's engine is asked
for: ``wal-push`` or ``status`` load the one engine they use, not all five (their clients,
boto3, the Kubernetes client, are a second or more together).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING

from workers.core.errors import EngineError

if TYPE_CHECKING:  # types only: wal-push imports its engine's modules, never the contract's
    from workers.context import Context
    from workers.core.engine import Engine
    from workers.runbooks.call import Operation

    KindEngine = Engine[Context, Operation]
    """An engine as the workers use it: on their Context, offering runbook Operations."""

ENGINE_MODULES: dict[str, str] = {
    "minio": "workers.engines.minio.engine",
    "postgres": "workers.engines.postgres.engine",
    "etcd": "workers.engines.etcd.engine",
    "velero": "workers.engines.velero.engine",
    "infisical": "workers.engines.infisical.engine",
}
"""Every component kind with a built engine, and the module whose ``ENGINE`` it is."""
WAL_SHIPPING_MODULE = "workers.engines.postgres.wal_shipping"
"""archive_command and restore_command's work: the WAL shipping of PostgreSQL, the one kind
that archives WAL (the CLI's wal-push, wal-fetch and wal-archiver call it)."""


class Registry(Mapping[str, "KindEngine"]):
    """Kind -> engine, importing an engine's module on first access to that kind."""

    def __init__(self, modules: Mapping[str, str]) -> None:
        self._modules = dict(modules)
        self._loaded: dict[str, KindEngine] = {}

    def __getitem__(self, kind: str) -> KindEngine:
        found = self._loaded.get(kind)
        if found is None:
            found = import_module(self._modules[kind]).ENGINE
            self._loaded[kind] = found
        return found

    def __contains__(self, kind: object) -> bool:
        return kind in self._modules  # Mapping's default would import the engine

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


ENGINES: Mapping[str, KindEngine] = Registry(ENGINE_MODULES)
"""Every component kind with a built engine (keys without imports; values on access)."""


def has_engine(kind: str) -> bool:
    """Whether backups of this component kind can run yet (imports nothing)."""
    return kind in ENGINE_MODULES


def engine_for(kind: str) -> KindEngine:
    """The engine of a component kind; EngineError when it is not built yet."""
    if kind not in ENGINES:
        raise EngineError(
            f"the {kind} engine is not built yet",
            hint="it stays valid config and shows in status until its engine lands",
        )
    return ENGINES[kind]


def wal_shipping() -> ModuleType:
    """PostgreSQL's WAL shipping module, imported on use (archive_command loads only it)."""
    return import_module(WAL_SHIPPING_MODULE)
