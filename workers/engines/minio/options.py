"""The options of a MinIO restore: the job's parameters, covered by the approval's digest."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, Field

from workers.core.operations import RestoreOptions


class MinioRestoreOptions(RestoreOptions):
    """What a MinIO restore writes where; the approved plan's digest covers all of it."""

    door_target: ClassVar[str | None] = "target"

    point: AwareDatetime | None = Field(default=None, description="--to: newest snapshot by then")
    target: str | None = Field(default=None, description="target bucket; default the same ones")
    bucket: str | None = Field(default=None, description="only this bucket of the snapshot")
    endpoint: str | None = Field(default=None, description="another endpoint (a fresh MinIO)")
    in_place: bool = Field(default=False, description="into the component's own buckets")
    prune_target: bool = Field(default=False, description="delete keys the snapshot lacks")
    dry_run: bool = Field(default=False, description="only count: create, overwrite, unchanged")
    scratch: bool = Field(
        default=False,
        description="a drill: each bucket into a new <bucket>-drill-<id> bucket, then every "
        "object read back and compared with the snapshot's sha256",
    )
