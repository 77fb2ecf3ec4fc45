"""A run's claims on what its steps create: claimed once, revived by a retry, removed once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workers.core.run_resources import (
    Resource,
    ResourceKind,
    claim,
    find,
    mark_removed,
    outstanding,
    release,
)

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def database(name: str, where: str = "postgres@db:5432", seconds: int = 0) -> Resource:
    return Resource(
        kind=ResourceKind.DATABASE,
        name=name,
        where=f"{where}/{name}",
        component="postgres",
        step="restore",
        claimed_at=T0 + timedelta(seconds=seconds),
    )


def test_a_retry_claims_the_same_thing_once() -> None:
    resources: list[Resource] = []
    claim(resources, database("kb_scratch"))
    claim(resources, database("kb_other"))
    retried = claim(resources, database("kb_scratch", seconds=30))
    assert [r.name for r in resources] == ["kb_scratch", "kb_other"]
    assert find(resources, database("kb_scratch")) == retried
    # The same name on another server is another thing.
    assert find(resources, database("kb_scratch", where="postgres@elsewhere:5432")) is None


def test_removal_is_recorded_once_and_outstanding_lists_newest_first() -> None:
    resources: list[Resource] = []
    for name in ("a", "b", "c"):
        claim(resources, database(name))
    assert [r.name for r in outstanding(resources)] == ["c", "b", "a"]
    mark_removed(resources, database("b"), T0 + timedelta(minutes=1))
    mark_removed(resources, database("b"), T0 + timedelta(minutes=2))
    removed = find(resources, database("b"))
    assert removed is not None and removed.removed_at == T0 + timedelta(minutes=1)
    assert [r.name for r in outstanding(resources)] == ["c", "a"]
    # Claimed again by a later attempt: outstanding again.
    claim(resources, database("b"))
    assert [r.name for r in outstanding(resources)] == ["c", "b", "a"]


def test_a_released_claim_is_forgotten() -> None:
    resources: list[Resource] = []
    claim(resources, database("theirs"))
    release(resources, database("theirs"))
    assert resources == []
    assert database("x").label() == "database x (postgres@db:5432/x)"
