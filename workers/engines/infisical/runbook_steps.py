"""The secrets engine's runbook steps: full recovery's import (+ rotation) and the drill's.

Full recovery imports every exported environment back where it came from, then, after a
security incident, rotates what is rotatable. The drill imports one exported environment
into a scratch environment and proves the counts: a second plan must find every secret
unchanged. Outputs are counts and names, never values.
"""

from __future__ import annotations

from typing import Any

from workers.context import Context
from workers.core.errors import ConfigError, IntegrityError
from workers.core.manifest import Manifest
from workers.core.ports import Progress, no_progress
from workers.engines.infisical import restoration, rotation
from workers.engines.infisical.component import identities, settings_of
from workers.engines.infisical.options import InfisicalRestoreOptions
from workers.engines.infisical.verification import read_export

YES = ("yes", "true", "1", "y")


def recover(
    ctx: Context,
    component: str,
    manifest: Manifest,
    *,
    rotate: bool,
    actor: str,
    record: rotation.Recorder,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """Import every exported environment into itself; with ``rotate``, rotate afterwards."""
    export = read_export(ctx, manifest, identities(ctx.settings))
    imported: dict[str, Any] = {}
    for env in export.environments:
        options = InfisicalRestoreOptions(
            target_env=env.environment, source_project=env.project, source_env=env.environment
        )
        result = restoration.restore(ctx, component, manifest, options, progress=progress)
        imported[result.target] = result.totals
    outputs: dict[str, Any] = {"backup_id": manifest.id, "imported": imported}
    if rotate:
        report = rotation.rotate(ctx, component, actor=actor, record=record, progress=progress)
        outputs["rotation"] = report.model_dump(mode="json")
        outputs["summary"] = report.summary()
    return outputs


def drill(
    ctx: Context, component: str, manifest: Manifest, *, progress: Progress = no_progress
) -> dict[str, Any]:
    """Import one exported environment into the scratch environment and compare counts."""
    settings = settings_of(ctx, component)
    scratch = settings.drill_environment
    if not scratch:
        raise ConfigError(
            f"{component}: the drill needs a scratch environment",
            hint="set drill_environment (an Infisical environment only drills write to)",
        )
    export = read_export(ctx, manifest, identities(ctx.settings))
    if not export.environments:
        raise IntegrityError(f"backup {manifest.id} exported no environment")
    source = export.environments[0]
    options = InfisicalRestoreOptions(
        target_env=scratch, source_project=source.project, source_env=source.environment
    )
    restoration.restore(ctx, component, manifest, options, progress=progress)
    check = restoration.restore(
        ctx, component, manifest, options.model_copy(update={"dry_run": True}), progress=progress
    )
    expected = source.secret_count()
    if check.totals != {"create": 0, "update": 0, "unchanged": expected}:
        raise IntegrityError(
            f"the scratch import of {check.source} does not match the backup: {check.totals},"
            f" expected {expected} unchanged"
        )
    return {
        "backup_id": manifest.id,
        "source": check.source,
        "target": check.target,
        "secrets": expected,
        "paths": len(check.paths),
    }
