"""What a Velero restore may be asked (covered by the approved plan's digest)."""

from __future__ import annotations

from pydantic import Field, field_validator

from workers.core.operations import RestoreOptions
from workers.engines.velero.objects import check_namespace


class VeleroRestoreOptions(RestoreOptions):
    """Some namespaces only (empty: all the backup holds), and a health budget."""

    namespaces: tuple[str, ...] = Field(default=(), description="only these; empty means all")
    health_budget: float = Field(
        default=0.0, ge=0, le=86400, description="seconds to wait for every workload ready"
    )

    @field_validator("namespaces")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted({check_namespace(name) for name in value}))
