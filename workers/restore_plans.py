"""Turning ``/restore <component> <ref> [--to] [--target] [--database]`` into a checked plan.

Resolution picks the concrete backup (``latest`` becomes an id, so an approval never covers
"whatever is newest when the job runs"), fills in a fresh target name and asks the target's
server and the live source who they are (their system identifiers: spelling cannot hide
the live source); validation then refuses what must not be approved: a backup that does
not exist, the live source without ``--in-place``, a restore point outside the recoverable
window, a password in a target. The worker asks the servers again before it restores.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from workers import engine, engines
from workers.context import Context
from workers.core.approvals import BackupFacts
from workers.core.catalog import FACT_RECOVERABLE_UNTIL, find_backup, good_backups
from workers.core.config import PostgresComponent
from workers.core.errors import (
    ConfigError,
    KosmosError,
    NotFoundError,
    PermissionDenied,
    UsageError,
)
from workers.core.manifest import BackupSummary, Manifest
from workers.core.operations import PostgresRestoreOptions
from workers.core.restore_plan import (
    RestorePlan,
    check_database_name,
    check_plan,
    database_name_with,
    has_password,
    lost_in_job,
    target_fields,
    targets_live,
)
from workers.core.target_identity import TargetIdentity

BASE_SUFFIX = "-base"
LIVE_NAMES = ("live", "in-place")
"""Targets that name the component's own live data for engines without databases."""
PLAN_PROBE_SECONDS = 1.5
"""How long plan time waits for the servers: it runs under the chat's answer deadline."""
WORKER_PROBE_SECONDS = 15.0
"""How long the worker waits for them: no restore starts before both have answered."""


def resolve_plan(
    ctx: Context,
    component: str,
    ref: str = "latest",
    *,
    target: str | None = None,
    database: str | None = None,
    point: datetime | None = None,
    in_place: bool = False,
    port: int | None = None,
    with_globals: bool = False,
    base: bool = False,
    options: dict[str, str | bool] | None = None,
) -> RestorePlan:
    """A concrete plan: the backup id chosen, a fresh target when none was given.

    ``base`` asks for a restore to a new instance: ``latest`` is then the newest base
    backup (never a dump), and a named backup must be one.
    """
    engine.require_component(ctx, component)
    options = options or _default_options(ctx, component)
    summary = _choose(ctx, component, ref, point, base=base)
    base = summary.kind.endswith(BASE_SUFFIX)
    manifest = ctx.repo.manifest(summary.id)
    plan = RestorePlan(
        component=component,
        backup_id=summary.id,
        target=target or _fresh_target(ctx, manifest, database, base),
        database=database,
        point=point,
        in_place=in_place,
        base=base,
        port=port,
        with_globals=with_globals,
        options=options or {},
    )
    return plan.model_copy(update={"target_identity": target_identity(ctx, plan)})


def _default_options(ctx: Context, component: str) -> dict[str, str | bool]:
    """The defaults of an engine's options model that asks to be carried even when unchanged.

    Without any options, the plan goes to the job as PostgreSQL's, which such an engine's
    model refuses; its defaults (text and flags, as a plan holds them) mark it as its own.
    """
    model = engines.engine_for(ctx.settings.component(component).kind).restore_options
    if issubclass(model, PostgresRestoreOptions) or not getattr(model, "carried", False):
        return {}
    return {
        name: value for name, value in model().model_dump().items() if isinstance(value, str | bool)
    }


def plan_from_options(ctx: Context, component: str, ref: str, **options: Any) -> RestorePlan:
    """A plan from ``kosmos-backup restore``'s options (target_database, target_dsn, …)."""
    point = options.get("target_time")
    if isinstance(point, str):
        point = datetime.fromisoformat(point)
    target_env = options.get("target_env")
    namespaces = options.get("namespaces")
    own = {"target_env": target_env} if target_env else {}
    own.update({"namespaces": namespaces} if namespaces else {})
    return resolve_plan(
        ctx,
        component,
        ref,
        target=options.get("target_dsn")
        or options.get("target_database")
        or options.get("data_dir")
        or target_env
        or namespaces,
        options=own or None,
        database=options.get("database"),
        point=point,
        in_place=bool(options.get("in_place")),
        port=options.get("port"),
        with_globals=bool(options.get("with_globals")),
    )


def validate_plan(ctx: Context, plan: RestorePlan) -> BackupFacts:
    """Check the plan against the catalog and config; the backup's facts for the card."""
    engine.require_component(ctx, plan.component)
    manifest = ctx.repo.manifest(plan.backup_id)
    if manifest.component != plan.component:
        raise UsageError(f"{plan.backup_id} is a backup of {manifest.component}")
    if has_password(plan.target):
        raise UsageError(
            "a target DSN must not carry a password: it would be stored with the request",
            hint="give the worker a ~/.pgpass entry (or PGPASSFILE) for the target instead",
        )
    if plan.base != manifest.kind.endswith(BASE_SUFFIX):
        raise UsageError(f"{plan.backup_id} is a {manifest.kind} backup; the plan says otherwise")
    lost = lost_in_job(plan)
    if lost:
        raise UsageError(
            f"a restore of {plan.backup_id} ({manifest.kind}) cannot use: {', '.join(lost)}",
            hint="leave it out; a new instance with its own port restores a base backup",
        )
    if plan.database and plan.database not in _databases(manifest):
        raise UsageError(
            f"{plan.backup_id} has no database {plan.database!r}",
            hint=f"it has: {', '.join(_databases(manifest)) or 'none'}",
        )
    if plan.target_identity is None:
        plan = plan.model_copy(update={"target_identity": target_identity(ctx, plan)})
    live = _is_live(ctx, plan, manifest)
    found = plan.target_identity
    if plan.in_place and not live and found is not None and not found.reachable:
        raise UsageError(
            f"--in-place given but target {plan.target_label()} did not say which server it is",
            hint=f"{found.label()}; ask again once it answers",
        )
    if _names_a_database(ctx, plan):
        check_database_name(plan.target)
    check_plan(plan, live=live, window=_window(ctx, manifest))
    return facts_of(manifest).model_copy(update={"dry_run": dry_run(ctx, plan)})


def dry_run(ctx: Context, plan: RestorePlan) -> tuple[str, ...]:
    """What a dry run of ``plan`` finds, for engines whose options can ask for one."""
    from workers.engines import engine_for

    kind = ctx.settings.component(plan.component).kind
    if not plan.options or "dry_run" not in engine_for(kind).restore_options.model_fields:
        return ()
    options: dict[str, Any] = {**plan.options, "dry_run": True}
    try:
        result = engine.restore(ctx, plan.component, plan.backup_id, **options)
    except UsageError:
        raise  # the plan itself is wrong (no such environment in the backup): refuse it
    except KosmosError as exc:
        # The dry run runs again in the worker before anything is written.
        return (f"not run here ({exc.message}); the worker runs it first",)
    summary = getattr(result, "summary", None)
    return tuple(
        str(line) for line in ([summary] if summary else []) + getattr(result, "lines", [])
    )


def target_identity(
    ctx: Context, plan: RestorePlan, budget: float = PLAN_PROBE_SECONDS
) -> TargetIdentity | None:
    """Ask the target's server and the live source who they are (database restores only)."""
    component = ctx.settings.component(plan.component)
    if not isinstance(component, PostgresComponent) or plan.base:
        return None
    from workers.engines.postgres import identity as pg_identity
    from workers.engines.postgres.conninfo import MAINTENANCE_DB, Conninfo

    setting = f"components.{plan.component}.dsn"
    source = Conninfo.parse(component.dsn.get_secret_value(), setting).maintenance()
    if not plan.target_is_dsn:
        # A new database name lives on the source server itself.
        [found] = pg_identity.system_ids([source], budget)
        return TargetIdentity.found(source=found, target=found)
    try:
        target = Conninfo.parse(plan.target, "the target DSN").with_dbname(MAINTENANCE_DB)
    except ConfigError as exc:
        raise UsageError(exc.message, hint=exc.hint) from None
    of_source, of_target = pg_identity.system_ids([source, target], budget)
    return TargetIdentity.found(source=of_source, target=of_target)


def recheck_target(ctx: Context, plan: RestorePlan) -> None:
    """The worker's check before a restore: the target is still the server that was approved."""
    found = target_identity(ctx, plan, WORKER_PROBE_SECONDS)
    if found is None:
        return
    where, approved = plan.target_label(), plan.target_identity
    if not found.reachable:
        raise PermissionDenied(
            f"cannot tell which server target {where} is: {found.reason}",
            hint="a restore runs only once its target answers; ask again when it does",
        )
    now = plan.model_copy(update={"target_identity": found})
    live = _is_live(ctx, now, ctx.repo.manifest(plan.backup_id))
    if live and not plan.in_place:
        said = approved.label() if approved is not None else "not asked"
        raise PermissionDenied(
            f"target {where} is now the live source ({found.label()}); at approval: {said}",
            hint="nothing was touched; ask again for a new target, or --in-place deliberately",
        )
    if plan.in_place and not live:
        raise PermissionDenied(
            f"--in-place was approved, but target {where} is no longer the live source "
            f"({found.label()})",
            hint="nothing was touched; ask again",
        )
    if approved is not None and approved.target_id not in (None, found.target_id):
        raise PermissionDenied(
            f"target {where} is another server than was approved "
            f"(system id {approved.target_id}, now {found.target_id})",
            hint="nothing was touched; ask again so the approvers see the server it is now",
        )


def facts_of(manifest: Manifest) -> BackupFacts:
    """What the approval card shows about a backup (its verdict: the best of its records)."""
    verdict = manifest.verdict
    return BackupFacts(
        kind=manifest.kind,
        finished_at=manifest.finished_at,
        size=manifest.total_size,
        verification=verdict.state.value if verdict is not None else None,
        verified_at=verdict.at if verdict is not None else None,
        deep=verdict.deep if verdict is not None else False,
    )


def _choose(
    ctx: Context, component: str, ref: str, point: datetime | None, *, base: bool = False
) -> BackupSummary:
    index = ctx.repo.index(component)
    if ref != "latest":
        found = find_backup(index, ref)
        if found is None:
            raise NotFoundError(f"{component}: no backup {ref!r}", see=("list", component))
        if base and not found.kind.endswith(BASE_SUFFIX):
            raise UsageError(
                f"{found.id} is a {found.kind} backup; a restore to a new instance needs a "
                "base backup",
                see=("list", component),
            )
        return found
    good = good_backups(index)
    if base and point is None:
        bases = [b for b in good if b.kind.endswith(BASE_SUFFIX)]
        if not bases:
            raise NotFoundError(
                f"{component}: no good base backup yet",
                "take one:",
                see=("backup", component, "--base"),
            )
        return bases[-1]
    if point is not None:
        # The newest base backup that ended before the point; WAL replay covers the rest.
        bases = [b for b in good if b.kind.endswith(BASE_SUFFIX) and b.finished_at <= point]
        if not bases:
            raise UsageError(
                f"no base backup of {component} ended before {point.isoformat()}",
                hint="--to needs a base backup older than that time",
            )
        return bases[-1]
    plain = [b for b in good if not b.kind.endswith(BASE_SUFFIX)] or good
    if not plain:
        raise NotFoundError(
            f"{component}: no good backup yet", hint="run:", see=("backup", component)
        )
    return plain[-1]


def _databases(manifest: Manifest) -> list[str]:
    named = {str(e.meta["database"]) for e in manifest.objects if e.meta.get("database")}
    return sorted(named or {str(d) for d in manifest.source.get("databases", [])})


def _fresh_target(ctx: Context, manifest: Manifest, database: str | None, base: bool) -> str:
    stamp = manifest.started_at.astimezone(UTC).strftime("%Y%m%d%H%M")
    component = ctx.settings.component(manifest.component)
    if base and isinstance(component, PostgresComponent):
        return f"{component.data_directory.rstrip('/')}-restore-{stamp}"
    databases = _databases(manifest)
    if database is None and len(databases) == 1:
        database = databases[0]
    if database is None:
        if databases:
            raise UsageError(
                f"{manifest.id} holds {len(databases)} databases; choose one",
                hint=f"--database one of: {', '.join(databases)} (or --target a DSN)",
            )
        return f"{manifest.component}-restore-{stamp}"
    return database_name_with(database, f"_restored_{stamp}")


def _names_a_database(ctx: Context, plan: RestorePlan) -> bool:
    component = ctx.settings.component(plan.component)
    return isinstance(component, PostgresComponent) and not plan.base and not plan.target_is_dsn


def _is_live(ctx: Context, plan: RestorePlan, manifest: Manifest) -> bool:
    component = ctx.settings.component(plan.component)
    if not isinstance(component, PostgresComponent):
        return plan.target in (*LIVE_NAMES, plan.component)
    if plan.base:
        return plan.target.rstrip("/") == component.data_directory.rstrip("/")
    source = component.dsn.get_secret_value()
    live = set(_databases(manifest))
    if "dbname" in target_fields(source):
        live.add(target_fields(source)["dbname"])
    return targets_live(
        plan.target, source=source, live_databases=live, identity=plan.target_identity
    )


def _window(ctx: Context, manifest: Manifest) -> tuple[datetime, datetime] | None:
    if not manifest.kind.endswith(BASE_SUFFIX):
        return None
    until = ctx.repo.index(manifest.component).facts.get(FACT_RECOVERABLE_UNTIL)
    end = datetime.fromisoformat(until) if isinstance(until, str) else until
    if not isinstance(end, datetime) or end < manifest.finished_at:
        end = manifest.finished_at
    return manifest.finished_at, end
