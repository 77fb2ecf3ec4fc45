"""Roles: who may do what, from ``slack.roles``; user groups resolved through Slack, failing closed.

A role entry is a Slack user id (``U0123ABCD``), a user-group id (``S0123ABCD``) or a
user-group handle (``@sre``). Group members come from ``usergroups.users.list`` and are
cached briefly; when Slack cannot be asked, the group counts as empty (nobody gains a
role because Slack was down).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import structlog

from workers.core.config import Roles
from workers.core.errors import PermissionDenied

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
GROUP_HANDLE = re.compile(r"^@[a-z0-9][a-z0-9._-]*$")
CACHE_SECONDS = 60.0
FAILURE_SECONDS = 5.0
"""After a failed lookup, wait this long before asking Slack again (the group stays empty)."""


class Permission(StrEnum):
    """What a role allows."""

    VIEW = "view"
    OPERATE = "operate"
    APPROVE = "approve"
    COMMAND = "command"


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "viewers": frozenset({Permission.VIEW}),
    "operators": frozenset({Permission.VIEW, Permission.OPERATE}),
    "approvers": frozenset({Permission.VIEW, Permission.APPROVE}),
    "incident_commanders": frozenset({Permission.VIEW, Permission.OPERATE, Permission.COMMAND}),
}
ACTION_PERMISSIONS: dict[str, Permission] = {
    "backup.status": Permission.VIEW,
    "backup.list": Permission.VIEW,
    "backup.help": Permission.VIEW,
    "backup.run": Permission.OPERATE,
    "backup.verify": Permission.OPERATE,
    "backup.audit": Permission.VIEW,
    "restore.help": Permission.VIEW,
    "restore.request": Permission.OPERATE,
    "restore.break-glass": Permission.COMMAND,
    "restore.approve": Permission.APPROVE,
    "restore.review": Permission.APPROVE,
    # The requester may withdraw without being an approver; the handler enforces the rest.
    "restore.deny": Permission.VIEW,
    "dr.help": Permission.VIEW,
    "dr.status": Permission.VIEW,
    "dr.start": Permission.OPERATE,  # operators and incident commanders
    "dr.abort": Permission.OPERATE,
    "dr.resume": Permission.OPERATE,
    "dr.confirm": Permission.OPERATE,
    "dr.approve": Permission.APPROVE,  # an approval step is a two-person gate
}
"""The permission each command needs; an action missing here is refused to everyone."""


class GroupResolver(Protocol):
    """Members of a user group named by handle (``@sre``) or id (``S…``)."""

    def members(self, group: str) -> frozenset[str]:
        """The user ids in ``group``; empty when unknown or when it cannot be resolved."""
        ...


class SelfNamedGroups:
    """Offline resolver for the console: ``@sre`` has one member, the pseudo-user ``@sre``."""

    def members(self, group: str) -> frozenset[str]:
        """The group's own name, so ``/as @sre`` acts as a member of @sre."""
        return frozenset({group})


@dataclass
class _Cached:
    value: Any
    expires: float


@dataclass
class SlackGroups:
    """Resolve groups with ``usergroups.list`` and ``usergroups.users.list``, cached briefly."""

    client: Any
    ttl: float = CACHE_SECONDS
    clock: Callable[[], float] = time.monotonic
    _cache: dict[str, _Cached] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def members(self, group: str) -> frozenset[str]:
        """The group's user ids; empty (and logged) when Slack does not answer."""
        try:
            group_id = group if GROUP_ID.match(group) else self._handles().get(group.lstrip("@"))
            if group_id is None:
                return frozenset()
            return self._cached(f"users:{group_id}", lambda: self._users(group_id))  # type: ignore[no-any-return]
        except Exception as exc:  # noqa: BLE001 - any failure must deny, not crash the command
            structlog.get_logger().warning("usergroup lookup failed", group=group, error=str(exc))
            return frozenset()

    def _handles(self) -> dict[str, str]:
        return self._cached("handles", self._list_handles)  # type: ignore[no-any-return]

    def _list_handles(self) -> dict[str, str]:
        answer = self.client.usergroups_list(include_disabled=False)
        return {g["handle"]: g["id"] for g in answer.get("usergroups", []) if "handle" in g}

    def _users(self, group_id: str) -> frozenset[str]:
        answer = self.client.usergroups_users_list(usergroup=group_id)
        return frozenset(answer.get("users", []))

    def _cached(self, key: str, load: Callable[[], Any]) -> Any:
        now = self.clock()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry.expires > now:
                if isinstance(entry.value, Exception):
                    raise entry.value
                return entry.value
        try:
            value = load()
        except Exception as exc:
            with self._lock:
                self._cache[key] = _Cached(exc, now + FAILURE_SECONDS)
            raise
        with self._lock:
            self._cache[key] = _Cached(value, now + self.ttl)
        return value


@dataclass
class Authorizer:
    """Decide whether a user may perform an action; ``open_access`` grants every role."""

    roles: Roles
    groups: GroupResolver
    open_access: bool = False

    def roles_of(self, user: str) -> frozenset[str]:
        """The role names ``user`` holds, directly or through a group."""
        if self.open_access:
            return frozenset(ROLE_PERMISSIONS)
        held = set()
        for role in ROLE_PERMISSIONS:
            for entry in getattr(self.roles, role):
                if self._matches(user, entry):
                    held.add(role)
                    break
        return frozenset(held)

    def permissions_of(self, user: str) -> frozenset[Permission]:
        """Everything ``user`` may do."""
        granted: set[Permission] = set()
        for role in self.roles_of(user):
            granted |= ROLE_PERMISSIONS[role]
        return frozenset(granted)

    def check(self, user: str, action: str) -> None:
        """Return if ``user`` may perform ``action``; else raise PermissionDenied (and audit it)."""
        needed = ACTION_PERMISSIONS.get(action)
        roles = [r for r, perms in ROLE_PERMISSIONS.items() if needed in perms] if needed else []
        if self.open_access and roles:
            return
        # Only the roles that grant the permission are resolved: fewer group lookups.
        for role in roles:
            if any(self._matches(user, entry) for entry in getattr(self.roles, role)):
                return
        shown = " or ".join(roles) or "a role that does not exist yet"
        audit_refusal(user, action, f"needs {shown}")
        raise PermissionDenied(
            f"you may not use {action.replace('.', ' ')}: it needs the {shown} role",
            hint=self._who_holds(roles),
        )

    def _who_holds(self, roles: list[str]) -> str:
        """Whom to ask, role by role: an incident commander is never listed as an operator."""
        if not roles:
            return ""
        held = [f"{role}: {', '.join(getattr(self.roles, role)) or 'nobody yet'}" for role in roles]
        return f"ask an admin to add you to slack.roles.{roles[0]} (today {'; '.join(held)})"

    def users(self) -> list[str]:
        """Every user id and group handle named in the roles, for the console's ``/as``."""
        named = [e for role in ROLE_PERMISSIONS for e in getattr(self.roles, role)]
        return list(dict.fromkeys(named))

    def _matches(self, user: str, entry: str) -> bool:
        if entry == user:
            return True
        if GROUP_HANDLE.match(entry) or GROUP_ID.match(entry):
            return user in self.groups.members(entry)
        return False


def audit_refusal(user: str, action: str, reason: str) -> None:
    """Record that a role check refused ``user`` (the audit log replaces this log line later)."""
    structlog.get_logger().warning("refused", user=user, action=action, reason=reason)
