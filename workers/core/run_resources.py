"""What a runbook run created (scratch databases, restored instances), so a teardown finds it.

Pure. A step *claims* a resource in the run's state before it creates it, and the claim is
stored durably first: whatever a crash, a lost worker or a lost Redis leaves behind, the
run knows every thing it may have made, and nothing is made that it does not know of.
A claim names where the thing lives (``where``: a server for a database, a host for an
instance), so a teardown never mistakes someone else's object of the same name for ours.
Removing is idempotent: a resource that is already gone counts as removed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict

from workers.core.model import Model


class ResourceKind(StrEnum):
    """The kinds of things a run may create."""

    DATABASE = "database"
    INSTANCE = "instance"
    """A data directory, and the PostgreSQL server running on it."""


class Resource(Model):
    """One thing a step of the run created (or was about to create)."""

    model_config = ConfigDict(extra="forbid")

    kind: ResourceKind
    name: str
    """The database name, or the instance's data directory."""
    where: str
    """The server (``user@host:port/db``, no secret) or the host that holds it."""
    component: str
    step: str
    port: int | None = None
    claimed_at: datetime
    removed_at: datetime | None = None

    @property
    def removed(self) -> bool:
        """Whether a teardown (or a retry) removed it."""
        return self.removed_at is not None

    def same(self, other: Resource) -> bool:
        """Whether both name the same thing in the same place."""
        return (self.kind, self.name, self.where) == (other.kind, other.name, other.where)

    def label(self) -> str:
        """``database kb_x (postgres@127.0.0.1:5432/kb_x)`` for people."""
        return f"{self.kind.value} {self.name} ({self.where})"


def claim(resources: list[Resource], resource: Resource) -> Resource:
    """Record ``resource`` before it is created; a retry's claim revives the earlier one."""
    for index, known in enumerate(resources):
        if known.same(resource):
            resources[index] = resource
            return resource
    resources.append(resource)
    return resource


def find(resources: list[Resource], resource: Resource) -> Resource | None:
    """The run's claim on the same thing, removed or not."""
    return next((known for known in resources if known.same(resource)), None)


def release(resources: list[Resource], resource: Resource) -> None:
    """Forget a claim whose thing was never created (another party made it first)."""
    resources[:] = [known for known in resources if not known.same(resource)]


def mark_removed(resources: list[Resource], resource: Resource, now: datetime) -> None:
    """Note that the thing is gone (removed now, or found gone)."""
    for known in resources:
        if known.same(resource) and known.removed_at is None:
            known.removed_at = now


def outstanding(resources: list[Resource]) -> list[Resource]:
    """What the run claimed and no teardown removed yet, newest first (undo order)."""
    return [known for known in reversed(resources) if not known.removed]
