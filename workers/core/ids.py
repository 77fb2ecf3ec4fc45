"""Backup and operation ids: sortable by time and short enough to type."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

COMPONENT_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
BACKUP_ID = re.compile(
    r"^(?P<component>[a-z][a-z0-9-]*)-(?P<stamp>[0-9]{8}T[0-9]{4}Z)-(?P<tag>[0-9a-f]{4})$"
)
TAG = re.compile(r"^[0-9a-f]{4}$")


def _utc(moment: datetime) -> datetime:
    # A naive datetime is taken as UTC, never as the machine's local time: ids must not
    # depend on where they were made.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _stamp(moment: datetime) -> str:
    # Formatted by hand: strftime's %Y does not zero-pad years before 1000 on glibc.
    return (
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}T{moment.hour:02d}{moment.minute:02d}Z"
    )


def new_backup_id(component: str, now: datetime, tag: str | None = None) -> str:
    """A new id such as ``postgres-20261124T0300Z-7f3a`` for a backup started at ``now``."""
    if not COMPONENT_NAME.match(component):
        raise ValueError(f"{component!r} is not a valid component name")
    tag = tag if tag is not None else secrets.token_hex(2)
    if not TAG.match(tag):
        raise ValueError(f"{tag!r} is not a backup id tag (four lowercase hex digits)")
    return f"{component}-{_stamp(_utc(now))}-{tag}"


def parse_backup_id(backup_id: str) -> tuple[str, datetime]:
    """Split an id into its component and start minute, or raise ValueError."""
    match = BACKUP_ID.match(backup_id)
    if match is None or not COMPONENT_NAME.match(match.group("component")):
        raise ValueError(
            f"{backup_id!r} is not a backup id (expected e.g. postgres-20261124T0300Z-7f3a)"
        )
    stamp = match.group("stamp")
    try:
        moment = datetime(
            int(stamp[0:4]),
            int(stamp[4:6]),
            int(stamp[6:8]),
            int(stamp[9:11]),
            int(stamp[11:13]),
            tzinfo=UTC,
        )
    except ValueError:
        raise ValueError(f"{backup_id!r} is not a backup id (its time is impossible)") from None
    return match.group("component"), moment


def new_operation_id(now: datetime) -> str:
    """An operation id such as ``op-20261124T030000Z-9c1e2b``: unique, sortable, quotable."""
    moment = _utc(now)
    return f"op-{_stamp(moment)[:-1]}{moment.second:02d}Z-{secrets.token_hex(3)}"
