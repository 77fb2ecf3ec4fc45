"""What runbook steps create: claimed before it is made, removed by the run's teardown.

A step that creates something (a restore's scratch database, a point-in-time restore's new
instance) first claims it in the run's state, durably: Redis and the storage both hold the
claim, or nothing is made. A crash, a lost worker or a lost Redis can then never leave a
thing behind that the run does not know of. ``run.teardown`` removes every claim still
outstanding, whether the run succeeded, failed or was aborted; removing twice, or a thing
that is already gone, is fine.

A retried step whose target exists from an earlier attempt of the same run drops it and
makes it again; it never adopts it. The earlier attempt stopped somewhere unknown (pg_restore
half done, WAL half replayed, or its checks failed), so the leftover proves nothing, and a
drill verified against it would report a recovery that never happened. It holds only what
this run put there, so dropping it loses nothing. A target that exists but that this run
never claimed is someone else's: the engine refuses it, as it always did.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from workers.context import Context
from workers.core import run_resources
from workers.core.errors import EngineError, KosmosError
from workers.core.ports import Progress
from workers.core.run_resources import Resource, ResourceKind
from workers.core.runbook import JobStep
from workers.core.runbook_run import RunState
from workers.engines.postgres import queries
from workers.engines.postgres.cluster import LocalInstance
from workers.engines.postgres.conninfo import MAINTENANCE_DB, Conninfo
from workers.engines.postgres.restoration import Placement, plan
from workers.state.runbook_store import RunStore

log = structlog.get_logger("kosmos.dr")


class Ledger:
    """One step's hold on its run's claims; each new claim is stored before the thing is made."""

    def __init__(self, ctx: Context, run: RunState, step_id: str) -> None:
        self.ctx = ctx
        self.run = run
        self.step_id = step_id
        self.store = RunStore(ctx.redis, ctx.repo.store, ctx.settings.redis.key_prefix)

    def resource(self, kind: ResourceKind, name: str, where: str, **extra: Any) -> Resource:
        """A resource this step is about to create."""
        return Resource(
            kind=kind,
            name=name,
            where=where,
            step=self.step_id,
            claimed_at=self.ctx.clock(),
            **extra,
        )

    def earlier(self, resource: Resource) -> Resource | None:
        """The run's outstanding claim on the same thing (an earlier attempt's, or a step's)."""
        known = run_resources.find(self.run.resources, resource)
        return known if known is not None and not known.removed else None

    def claim(self, resource: Resource) -> None:
        """Store the claim in Redis and the storage; raises (nothing is made) if either fails."""
        self._change(lambda run: run_resources.claim(run.resources, resource), strict=True)

    def release(self, resource: Resource) -> None:
        """Drop a claim on a thing someone else made first."""
        self._change(lambda run: run_resources.release(run.resources, resource), strict=True)

    def removed(self, resource: Resource) -> None:
        """Note that the thing is gone."""
        now = self.ctx.clock()
        self._change(lambda run: run_resources.mark_removed(run.resources, resource, now))

    def _change(self, change: Callable[[RunState], Any], *, strict: bool = False) -> None:
        self.run, _ = self.store.update(self.run.run_id, change, durable=True, strict=strict)


# -- before creating -------------------------------------------------------------------------


def placements(
    ctx: Context, component: str, ref: str, options: dict[str, str | None]
) -> list[Placement]:
    """Where a dump restore will create databases: the engine's own plan, made ahead."""
    from workers.engines.postgres.logical import resolve_dump, source_of

    return plan(
        resolve_dump(ctx, component, ref),
        source_of(ctx, component),
        target_database=options.get("target_database"),
        target_dsn=options.get("target_dsn"),
        database=options.get("database"),
    )


def claim_databases(
    ledger: Ledger, component: str, placements: Sequence[Placement], progress: Progress
) -> list[Resource]:
    """Claim each new database of a restore; drop what an earlier attempt of the run left."""
    claimed = []
    for placement in placements:
        resource = ledger.resource(
            ResourceKind.DATABASE,
            placement.database,
            placement.server.describe(placement.database),
            component=component,
        )
        with contextlib.closing(queries.connect(placement.maintenance())) as conn:
            exists = queries.database_exists(conn, placement.database)
            if exists and ledger.earlier(resource) is not None:
                progress("restore", note=f"dropping {placement.database}: an earlier attempt's")
                log.info("dropping an earlier attempt's database", database=placement.database)
                queries.drop_database(conn, placement.database)
                exists = False
        if not exists:  # else not ours: the engine refuses it
            ledger.claim(resource)
            claimed.append(resource)
    return claimed


def claim_instance(
    ledger: Ledger, component: str, data_dir: str, port: int | None, progress: Progress
) -> Resource | None:
    """Claim a new instance's data directory; wipe what an earlier attempt of the run left."""
    path = Path(data_dir)
    resource = ledger.resource(
        ResourceKind.INSTANCE, str(path), socket.gethostname(), component=component, port=port
    )
    if path.exists() and ledger.earlier(resource) is not None:
        progress("restore", note=f"removing {path}: an earlier attempt's")
        log.info("removing an earlier attempt's instance", data_dir=str(path))
        remove_instance(resource)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        return None  # not ours: the engine refuses it
    ledger.claim(resource)
    return resource


# -- tearing down ----------------------------------------------------------------------------


def teardown(ctx: Context, run: RunState, step_id: str) -> dict[str, Any]:
    """Remove everything the run claimed and still holds: ``run.teardown``'s work."""
    ledger = Ledger(ctx, run, step_id)
    dropped: list[str] = []
    removed: list[str] = []
    gone: list[str] = []
    failures: list[str] = []
    for resource in run_resources.outstanding(ledger.run.resources):
        try:
            existed = remove(ctx, ledger.run, resource)
        except KosmosError as exc:
            failures.append(f"{resource.label()}: {exc.message}")
            continue
        ledger.removed(resource)
        if not existed:
            gone.append(resource.name)
        elif resource.kind == ResourceKind.DATABASE:
            dropped.append(resource.name)
        else:
            removed.append(resource.name)
    if failures:
        raise EngineError(
            "teardown could not remove " + "; ".join(failures),
            hint="retry the step, or remove them by hand; the run's report lists what is left",
        )
    outputs: dict[str, Any] = {"dropped": dropped}
    outputs.update({k: v for k, v in (("removed", removed), ("already_gone", gone)) if v})
    return outputs


def remove(ctx: Context, run: RunState, resource: Resource) -> bool:
    """Remove one claimed thing; False when it was already gone."""
    if resource.kind == ResourceKind.DATABASE:
        return drop_database(ctx, run, resource)
    return remove_instance(resource)


def drop_database(ctx: Context, run: RunState, resource: Resource) -> bool:
    """Drop a claimed database, on the server it was claimed on."""
    server = _server_of(ctx, run, resource)
    if server.describe(resource.name) != resource.where:
        raise EngineError(
            f"{resource.label()} is not on {server.describe(resource.name)} any more",
            hint="the step's target changed since; drop it there by hand",
        )
    admin = server.with_dbname(MAINTENANCE_DB) if server.dbname in (None, resource.name) else server
    with contextlib.closing(queries.connect(admin)) as conn:
        existed = queries.database_exists(conn, resource.name)
        queries.drop_database(conn, resource.name)
    log.info("database removed", database=resource.name, run_id=run.run_id, existed=existed)
    return existed


def remove_instance(resource: Resource) -> bool:
    """Stop a claimed instance and delete its data directory (on the host that holds it)."""
    from workers.engines.postgres.pitr import LOG_NAME

    if resource.where != socket.gethostname():
        raise EngineError(
            f"{resource.label()} is on host {resource.where}, not here",
            hint="remove it on that host (stop its postgres, delete the directory)",
        )
    path = Path(resource.name)
    if not path.exists():
        return False
    LocalInstance(str(path), resource.port or 0, str(path / LOG_NAME)).stop(mode="immediate")
    try:
        shutil.rmtree(path)
    except OSError as exc:
        raise EngineError(f"cannot delete {path}: {exc.strerror}") from exc
    log.info("instance removed", data_dir=str(path))
    return True


def _server_of(ctx: Context, run: RunState, resource: Resource) -> Conninfo:
    # A database made on another server was made through the step's target_dsn: resolve it
    # again rather than keep a DSN, and its password, in the run's state.
    from workers.engines.postgres.logical import source_of

    step = run.runbook.step(resource.step)
    dsn = run.resolved(step.params).get("target_dsn") if isinstance(step, JobStep) else None
    if dsn:
        return Conninfo.parse(str(dsn), setting="target_dsn")
    return source_of(ctx, resource.component)
