"""Backup and operation ids: sortable by time and short enough to type."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

COMPONENT_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
BACKUP_ID = re.compile(
    r"^(?P<component>[a-z][a-z0-9-]*)-(?P<stamp>\d{8}T\d{4}Z)-(?P<tag>[0-9a-f]{4})$"
)
_STAMP = "%Y%m%dT%H%MZ"


def new_backup_id(component: str, now: datetime, tag: str | None = None) -> str:
    """A new id such as ``postgres-20261124T0300Z-7f3a`` for a backup started at ``now``."""
    if not COMPONENT_NAME.match(component):
        raise ValueError(f"{component!r} is not a valid component name")
    tag = tag if tag is not None else secrets.token_hex(2)
    return f"{component}-{now.astimezone(UTC).strftime(_STAMP)}-{tag}"


def parse_backup_id(backup_id: str) -> tuple[str, datetime]:
    """Split an id into its component and start minute, or raise ValueError."""
    match = BACKUP_ID.match(backup_id)
    if match is None:
        raise ValueError(
            f"{backup_id!r} is not a backup id (expected e.g. postgres-20261124T0300Z-7f3a)"
        )
    stamp = datetime.strptime(match.group("stamp"), _STAMP).replace(tzinfo=UTC)
    return match.group("component"), stamp


def new_operation_id(now: datetime) -> str:
    """An operation id such as ``op-20261124T030000Z-9c1e2b``: unique, sortable, quotable."""
    return f"op-{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
