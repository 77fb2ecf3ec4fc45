"""Where an import of secrets goes: the engine's restore options, covered by the plan's digest."""

from __future__ import annotations

from pydantic import Field

from workers.core.operations import RestoreOptions

ENV_SLUG = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class InfisicalRestoreOptions(RestoreOptions):
    """The target environment (and project), which exported one to read, and dry or not."""

    target_env: str = Field(pattern=ENV_SLUG, description="the environment to import into")
    target_project: str | None = Field(default=None, description="default: the source project")
    source_project: str | None = Field(default=None, description="default: the only one")
    source_env: str | None = Field(
        default=None, description="default: the target's slug if exported, else the only one"
    )
    dry_run: bool = Field(default=False, description="only count what would change")
