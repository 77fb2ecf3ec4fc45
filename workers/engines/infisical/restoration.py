"""Import an export back into Infisical: the same or another project/environment.

Every import is planned against the target first; a dry run stops there and reports the
create / update / unchanged counts per path. Nothing here ever reports a value.
"""

from __future__ import annotations

from pydantic import ConfigDict, computed_field

from workers.context import Context
from workers.core.errors import UsageError
from workers.core.manifest import Manifest
from workers.core.model import Model
from workers.core.ports import Progress, no_progress
from workers.engines.infisical import document
from workers.engines.infisical.api import InfisicalApi
from workers.engines.infisical.component import identities, settings_of
from workers.engines.infisical.options import InfisicalRestoreOptions
from workers.engines.infisical.verification import read_export


class ImportResult(Model):
    """What an import did (or, dry, would do): counts per path, never values."""

    model_config = ConfigDict(frozen=True)

    backup_id: str
    source: str
    target: str
    dry_run: bool
    paths: dict[str, dict[str, int]]
    totals: dict[str, int]
    tags_dropped: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def lines(self) -> list[str]:
        """One line per path, for the card and the CLI: counts, never values."""
        verb = ("to create", "to update") if self.dry_run else ("created", "updated")
        return [
            f"{path}: {c['create']} {verb[0]}, {c['update']} {verb[1]}, {c['unchanged']} unchanged"
            for path, c in self.paths.items()
        ]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> str:
        """One line for people."""
        t = self.totals
        if self.dry_run:
            done = f"{t['create']} to create, {t['update']} to update"
        else:
            done = f"{t['create']} created, {t['update']} updated"
        verb = "would import" if self.dry_run else "imported"
        return (
            f"{verb} {self.source} from {self.backup_id} into {self.target}: "
            f"{done}, {t['unchanged']} unchanged"
        )


def choose_source(
    export: document.SecretsExport, options: InfisicalRestoreOptions
) -> document.EnvironmentExport:
    """The exported environment an import reads, or a UsageError listing the choices."""
    have = [(e.project, e.environment) for e in export.environments]
    candidates = [
        e
        for e in export.environments
        if options.source_project in (None, e.project)
        and options.source_env in (None, e.environment)
    ]
    if options.source_env is None and len(candidates) > 1:
        same = [e for e in candidates if e.environment == options.target_env]
        candidates = same or candidates
    if len(candidates) != 1:
        listed = ", ".join(f"{p}/{e}" for p, e in have) or "nothing"
        what = "is not in" if not candidates else "is ambiguous in"
        raise UsageError(
            f"the source environment {what} this backup",
            hint=f"name one with source_project/source_env; it holds: {listed}",
        )
    return candidates[0]


def restore(
    ctx: Context,
    component: str,
    manifest: Manifest,
    options: InfisicalRestoreOptions,
    *,
    progress: Progress = no_progress,
) -> ImportResult:
    """Plan the import of one exported environment; unless dry, apply it."""
    settings = settings_of(ctx, component)
    progress("decrypt")
    export = read_export(ctx, manifest, identities(ctx.settings))
    source = choose_source(export, options)
    target = (options.target_project or source.project, options.target_env)
    with InfisicalApi(settings) as api:
        progress("plan", note=f"{target[0]}/{target[1]}")
        current = api.current(*target, [folder.path for folder in source.folders])
        plan = document.plan_import(source, target, current)
        # Always a dry run first: its counts are reported before anything is written.
        for path, counts in plan.counts().items():
            progress("dry run", note=f"{path}: {_counted(counts)}")
        if not options.dry_run:
            _apply(api, plan, progress)
    dropped = 0 if plan.same_project else _tag_count(plan)
    return ImportResult(
        backup_id=manifest.id,
        source=f"{source.project}/{source.environment}",
        target=f"{target[0]}/{target[1]}",
        dry_run=options.dry_run,
        paths=plan.counts(),
        totals=plan.totals(),
        tags_dropped=dropped,
    )


def _counted(counts: dict[str, int]) -> str:
    create, update, same = counts["create"], counts["update"], counts["unchanged"]
    return f"{create} to create, {update} to update, {same} unchanged"


def _apply(api: InfisicalApi, plan: document.ImportPlan, progress: Progress) -> None:
    for path in plan.missing_folders:
        api.ensure_folder(*plan.target, path)
    for path, changes in sorted(plan.paths.items()):
        progress("import", note=f"{path}: {changes.counts()}")
        for record, create in [(r, True) for r in changes.create] + [
            (r, False) for r in changes.update
        ]:
            # Tag ids belong to their project: into another project the tags are left off.
            tags = [tag.id for tag in record.tags] if plan.same_project and record.tags else None
            api.write_secret(plan.target, path, record, create=create, tag_ids=tags)


def _tag_count(plan: document.ImportPlan) -> int:
    changed = [r for p in plan.paths.values() for r in p.create + p.update]
    return sum(1 for record in changed if record.tags)
