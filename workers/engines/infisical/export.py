"""The daily export: every configured project and environment, one age-encrypted document."""

from __future__ import annotations

from workers.context import Context
from workers.core.manifest import Manifest
from workers.core.ports import Progress, no_progress
from workers.engines.infisical import document
from workers.engines.infisical.api import InfisicalApi
from workers.engines.infisical.component import BACKUP_KIND, require_recipients, settings_of


def backup(ctx: Context, component: str, *, progress: Progress = no_progress) -> Manifest:
    """Export every configured project/environment and commit one encrypted backup.

    The document is built in memory and handed straight to the encrypting pipeline:
    plaintext never reaches a file, the store, a log or an event.
    """
    settings = settings_of(ctx, component)
    require_recipients(ctx.settings)
    exported = []
    started = ctx.clock()
    with InfisicalApi(settings) as api:
        for project in settings.projects:
            for environment in settings.environments:
                progress("export", note=f"{project}/{environment}")
                exported.append(api.walk(project, environment, settings.root_path))
    export = document.SecretsExport(exported_at=started, environments=tuple(exported))
    counts = export.counts()
    with ctx.repo.begin(component, BACKUP_KIND) as writer:
        progress("encrypt and store")
        writer.write(document.OBJECT_NAME, [export.encode()], compress=True, encrypt=True)
        return writer.commit(
            source={"api_url": settings.api_url, "projects": list(settings.projects)},
            details={
                "format": document.FORMAT,
                "counts": counts,
                "secrets": sum(env.secret_count() for env in exported),
                "environments": [f"{e.project}/{e.environment}" for e in exported],
            },
            tool_versions={"infisicalsdk": _sdk_version()},
        )


def _sdk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("infisicalsdk")
    except PackageNotFoundError:
        return "unknown"
