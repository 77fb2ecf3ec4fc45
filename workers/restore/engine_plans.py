"""Plans of engines that restore by their own options (every kind but PostgreSQL's).

``/restore <component> <ref> --to TIME --target X``: ``--target`` fills the field the engine's
options name (``door_target``: a bucket, a data directory), and the engine's ``check_plan``
picks the backup by ``--to`` at plan time, so the approved plan names a backup, not a time.
The engine checks the plan again when it is validated and before the worker restores.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workers import engines
from workers.context import Context
from workers.core.errors import UsageError
from workers.core.manifest import Manifest
from workers.core.operations import PostgresRestoreOptions
from workers.core.restore_plan import RestorePlan


def engine_of(ctx: Context, component: str) -> Any:
    """The engine of a configured component."""
    return engines.engine_for(ctx.settings.component(component).kind)


def own_options(ctx: Context, component: str) -> bool:
    """Whether the component's engine restores by its own options (not PostgreSQL's)."""
    return not issubclass(engine_of(ctx, component).restore_options, PostgresRestoreOptions)


def engine_plan(
    ctx: Context,
    manifest: Manifest,
    ref: str,
    *,
    target: str | None,
    default_target: str,
    point: datetime | None,
    in_place: bool,
    options: dict[str, str | bool],
) -> RestorePlan:
    """The plan of ``manifest`` (``ref`` chosen) as the component's engine checks it.

    ``default_target`` names where it goes without ``--target`` (for the card; the engine's
    options then keep their own default, e.g. Velero's namespaces the backup holds).
    """
    if point is not None and ref != "latest":
        raise UsageError("give a backup id or --to, not both", hint="--to picks the backup itself")
    if in_place:
        # No approval covers writing over an engine's live data from a door: a drill or a
        # runbook step does that, deliberately, with its own options.
        raise UsageError(
            f"a restore of {manifest.component} never writes over its live data from here",
            hint="--target a new one; copy back what you need",
        )
    chosen = engine_of(ctx, manifest.component)
    own = dict(options) or default_options(ctx, manifest.component)
    door = chosen.restore_options.door_target
    if door is not None and target:
        own[door] = target
    plan = RestorePlan(
        component=manifest.component,
        backup_id=manifest.id,
        target=target or default_target,
        point=point,
        in_place=in_place,
        options=own,
    )
    checked: RestorePlan = chosen.check_plan(ctx, plan, manifest)
    return checked


def check_again(ctx: Context, plan: RestorePlan, manifest: Manifest) -> None:
    """UsageError unless the engine passes ``plan`` as it stands (plan time, before the card)."""
    if engine_of(ctx, plan.component).check_plan(ctx, plan, manifest) != plan:
        raise UsageError(f"{plan.backup_id}: the plan is not the one its engine would make")


def default_options(ctx: Context, component: str) -> dict[str, str | bool]:
    """The defaults of an engine's options model that asks to be carried even when unchanged.

    Without any options, the plan goes to the job as PostgreSQL's, which such an engine's
    model refuses; its defaults (text and flags, as a plan holds them) mark it as its own.
    """
    model = engine_of(ctx, component).restore_options
    if issubclass(model, PostgresRestoreOptions) or not getattr(model, "carried", False):
        return {}
    return {
        name: value for name, value in model().model_dump().items() if isinstance(value, str | bool)
    }
