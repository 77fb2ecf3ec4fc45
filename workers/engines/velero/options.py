"""What a Velero restore may be asked (covered by the approved plan's digest).

Text fields, as chat and runbook parameters give them: a plan carries an engine's options as
``str | bool`` values, and a whole restore still carries them (empty), so it is Velero's.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from workers.core.durations import parse_duration
from workers.core.operations import RestoreOptions
from workers.engines.velero.objects import check_namespace


class VeleroRestoreOptions(RestoreOptions):
    """Some namespaces only (empty: all the backup holds), and a health budget."""

    carried: ClassVar[bool] = True
    """A plan carries these even when unchanged (a whole restore), so it is Velero's."""

    namespaces: str = Field(default="", description="comma list; empty means all")
    health_budget: str = Field(
        default="", description="wait this long for every workload ready (e.g. 10m); empty: no"
    )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _names(cls, value: object) -> str:
        names = value.split(",") if isinstance(value, str) else list(value)  # type: ignore[call-overload]
        return ",".join(sorted({check_namespace(str(n).strip()) for n in names if str(n).strip()}))

    @field_validator("health_budget", mode="before")
    @classmethod
    def _budget(cls, value: object) -> str:
        if value in (None, "", 0, 0.0):
            return ""
        if isinstance(value, int | float):
            return f"{int(value)}s"
        parse_duration(str(value))  # ValueError names the problem
        return str(value)

    def namespace_list(self) -> tuple[str, ...]:
        """The namespaces as a tuple (empty: all)."""
        return tuple(n for n in self.namespaces.split(",") if n)

    def budget_seconds(self) -> float:
        """The health budget in seconds (0: no wait)."""
        return parse_duration(self.health_budget).total_seconds() if self.health_budget else 0.0
