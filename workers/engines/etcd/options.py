"""etcd's restore options: where a snapshot goes. Light: the registry imports it in doors."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, ValidationError, model_validator

from workers.core.errors import UsageError
from workers.core.operations import RestoreOptions


class EtcdRestoreOptions(RestoreOptions):
    """Where a snapshot goes: fetched only, a new data dir, a K3s cluster reset, or a scratch."""

    door_target: ClassVar[str | None] = "data_dir"

    data_dir: str | None = Field(default=None, description="plain etcd: a NEW data directory")
    snapshot_path: str | None = Field(
        default=None, description="where the snapshot is downloaded on the node"
    )
    k3s_reset: bool = Field(
        default=False, description="run stop, --cluster-reset, start on this K3s node"
    )
    scratch: bool = Field(default=False, description="a drill: serve it on loopback and compare")
    member: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    peer_url: str = Field(default="http://localhost:2380", pattern=r"^https?://[^\s,=]+$")

    @model_validator(mode="after")
    def _one_target(self) -> EtcdRestoreOptions:
        if sum([self.data_dir is not None, self.k3s_reset, self.scratch]) > 1:
            raise ValueError("choose one of data_dir, k3s_reset and scratch")
        return self

    @classmethod
    def parse(cls, options: dict[str, Any]) -> EtcdRestoreOptions:
        """Options from a request or a runbook step; UsageError naming the bad one."""
        try:
            return cls.model_validate(options)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"]) or "options"
            raise UsageError(f"etcd restore: {where}: {error['msg']}") from None
