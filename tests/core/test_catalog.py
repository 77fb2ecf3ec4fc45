"""Catalog policy: freshness against the RPO at chosen instants, due times, lookups."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.conftest import EXAMPLE_CONFIG
from workers.config_loader import parse_settings
from workers.core.catalog import (
    FACT_RECOVERABLE_UNTIL,
    Freshness,
    chosen_by_point,
    component_status,
    fact_time,
    find_backup,
)
from workers.core.config import Settings
from workers.core.errors import UsageError
from workers.core.ids import new_backup_id
from workers.core.manifest import (
    BackupSummary,
    CatalogIndex,
    VerificationRecord,
    VerificationState,
)
from workers.core.views import status_document

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.fixture
def settings() -> Settings:
    env = {"KOSMOS__STORAGE__URL": "file:///tmp/unused", "KOSMOS__COMPONENTS__ETCD__ENABLED": "no"}
    return parse_settings(EXAMPLE_CONFIG.read_text(), env)


def backup(
    component: str, finished: datetime, *, took: timedelta = timedelta(minutes=5), tag: str = "0001"
) -> BackupSummary:
    started = finished - took
    return BackupSummary(
        id=new_backup_id(component, started, tag=tag),
        component=component,
        kind="postgres-logical",
        started_at=started,
        finished_at=finished,
        size=1000,
        objects=1,
    )


def verified(summary: BackupSummary, state: VerificationState, at: datetime) -> BackupSummary:
    record = VerificationRecord(state=state, at=at)
    return summary.model_copy(update={"verification": record})


def index_of(component: str, *backups: BackupSummary) -> CatalogIndex:
    index = CatalogIndex(component=component)
    for item in backups:
        index.upsert(item)
    return index


def test_never_backed_up_is_breached_and_due_now(settings: Settings) -> None:
    row = component_status(settings, "postgres", CatalogIndex(component="postgres"), T0)
    assert row.freshness == Freshness.NEVER
    assert row.rpo_breached is True
    assert row.last_backup is None and row.age_seconds is None and row.recovery_point is None
    assert row.next_due == T0
    assert (row.retained, row.oldest, row.last_verification) == (0, None, None)
    assert row.rpo_seconds == 3600
    assert row.breached_by_seconds == 0


@pytest.mark.parametrize(
    ("after", "freshness", "breached", "by"),
    [
        (timedelta(minutes=10), Freshness.FRESH, False, 0),
        (timedelta(minutes=45), Freshness.FRESH, False, 0),
        (timedelta(minutes=46), Freshness.AGING, False, 0),
        (timedelta(minutes=60), Freshness.AGING, False, 0),
        (timedelta(minutes=61), Freshness.BREACHED, True, 60),
        (timedelta(hours=5), Freshness.BREACHED, True, 4 * 3600),
    ],
)
def test_freshness_at_different_instants(
    settings: Settings, after: timedelta, freshness: Freshness, breached: bool, by: float
) -> None:
    index = index_of("postgres", backup("postgres", T0))
    row = component_status(settings, "postgres", index, T0 + after)
    assert row.freshness == freshness
    assert row.rpo_breached is breached
    assert row.breached_by_seconds == by
    assert row.age_seconds == after.total_seconds()
    assert row.recovery_point == T0
    # Due one frequency (1 h) after the last good backup *started* (5 minutes before T0).
    assert row.next_due == T0 - timedelta(minutes=5) + timedelta(hours=1)


def test_daily_component_is_judged_against_its_frequency(settings: Settings) -> None:
    index = index_of("minio", backup("minio", T0))
    assert component_status(settings, "minio", index, T0 + timedelta(hours=20)).freshness == (
        Freshness.AGING
    )
    late = component_status(settings, "minio", index, T0 + timedelta(hours=25))
    assert late.rpo_breached and late.rpo_seconds == 86400


def test_disabled_component_is_never_breached(settings: Settings) -> None:
    row = component_status(settings, "etcd", CatalogIndex(component="etcd"), T0)
    assert row.freshness == Freshness.DISABLED
    assert row.enabled is False and row.rpo_breached is False


def test_counts_oldest_and_failed_verifications(settings: Settings) -> None:
    old = verified(
        backup("postgres", T0 - timedelta(days=3), tag="000a"),
        VerificationState.PASSED,
        T0 - timedelta(days=2),
    )
    good = backup("postgres", T0 - timedelta(hours=2), tag="000b")
    bad = verified(
        backup("postgres", T0 - timedelta(minutes=20), tag="000c"),
        VerificationState.FAILED,
        T0 - timedelta(minutes=10),
    )
    row = component_status(settings, "postgres", index_of("postgres", bad, old, good), T0)
    # A backup that failed verification does not count as the last good one...
    assert row.last_backup is not None and row.last_backup.id == good.id
    assert row.freshness == Freshness.BREACHED
    # ...but it is still retained, and it is the last verification result.
    assert row.retained == 3
    assert row.oldest == T0 - timedelta(days=3)
    assert row.last_verification is not None
    assert row.last_verification.state == VerificationState.FAILED


def test_recoverable_until_extends_the_recovery_point(settings: Settings) -> None:
    index = index_of("postgres", backup("postgres", T0 - timedelta(hours=3)))
    index.facts[FACT_RECOVERABLE_UNTIL] = (T0 - timedelta(minutes=2)).isoformat()
    row = component_status(settings, "postgres", index, T0)
    assert row.recovery_point == T0 - timedelta(minutes=2)
    assert row.freshness == Freshness.FRESH
    # Naive values are UTC; malformed ones are ignored, never an exception on the board.
    index.facts[FACT_RECOVERABLE_UNTIL] = "2026-11-24T02:50:00"
    assert component_status(settings, "postgres", index, T0).age_seconds == 600
    index.facts[FACT_RECOVERABLE_UNTIL] = "yesterday"
    assert component_status(settings, "postgres", index, T0).age_seconds == 3 * 3600


def test_find_backup_latest_id_and_prefix() -> None:
    first = backup("postgres", T0 - timedelta(hours=2), tag="aaaa")
    second = backup("postgres", T0 - timedelta(hours=1), tag="bbbb")
    failed = verified(
        backup("postgres", T0, tag="cccc"), VerificationState.FAILED, T0 + timedelta(minutes=1)
    )
    index = index_of("postgres", first, second, failed)
    found = find_backup(index, "latest")
    assert found is not None and found.id == second.id
    exact = find_backup(index, failed.id)
    assert exact is not None and exact.id == failed.id  # asked by id: returned anyway
    by_prefix = find_backup(index, first.id[:-2])
    assert by_prefix is not None and by_prefix.id == first.id
    assert find_backup(index, "postgres-2026") is None  # ambiguous
    assert find_backup(index, "postgres-20991231T0000Z-ffff") is None
    assert find_backup(CatalogIndex(component="postgres"), "latest") is None


def test_empty_reference_finds_nothing() -> None:
    assert find_backup(index_of("postgres", backup("postgres", T0)), "") is None


def test_status_document_shape(settings: Settings) -> None:
    index = index_of("postgres", backup("postgres", T0))
    rows = [
        component_status(settings, "postgres", index, T0 + timedelta(minutes=1)),
        component_status(settings, "minio", CatalogIndex(component="minio"), T0),
    ]
    document = json.loads(json.dumps(status_document(settings, rows)))
    assert document["objectives"] == {
        "rpo_seconds": 3600.0,
        "rto_seconds": 14400.0,
        "rpo": "1h",
        "rto": "4h",
    }
    postgres, minio = document["components"]
    assert postgres["name"] == "postgres" and postgres["kind"] == "postgres"
    assert postgres["last_backup"]["id"] == index.backups[0].id
    assert postgres["age_seconds"] == 60 and postgres["rpo_breached"] is False
    assert postgres["state"] == "fresh"
    assert postgres["next_due"] == "2026-11-24T03:55:00+00:00"
    assert postgres["retained"] == 1
    assert minio["last_backup"] is None and minio["rpo_breached"] is True
    assert minio["state"] == "never backed up"
    for key in ("rpo_seconds", "next_due", "oldest", "last_verification", "recovery_point"):
        assert key in minio


# -- --to: the backup a restore point chooses ----------------------------------------------------


def test_the_point_chooses_the_newest_good_backup_finished_by_it() -> None:
    first = backup("postgres", T0 - timedelta(hours=2), tag="aaaa")
    second = backup("postgres", T0 - timedelta(hours=1), tag="bbbb")
    failed = verified(
        backup("postgres", T0 - timedelta(minutes=30), tag="cccc"), VerificationState.FAILED, T0
    )
    index = index_of("postgres", first, second, failed)
    assert chosen_by_point(index, T0) == second
    assert chosen_by_point(index, T0 - timedelta(hours=1)) == second  # finished at the point
    assert chosen_by_point(index, T0 - timedelta(hours=1, seconds=1)) == first


def test_backups_finished_at_the_same_instant_are_told_apart_by_id() -> None:
    one = backup("postgres", T0, tag="000a")
    other = backup("postgres", T0, tag="000b")
    assert chosen_by_point(index_of("postgres", other, one), T0) == other
    assert chosen_by_point(index_of("postgres", one, other), T0) == other


def test_a_point_before_every_good_backup_names_the_first_one() -> None:
    failed_first = verified(
        backup("postgres", T0 - timedelta(days=1), tag="aaaa"), VerificationState.FAILED, T0
    )
    index = index_of(
        "postgres",
        failed_first,
        backup("postgres", T0 + timedelta(hours=1), tag="cccc"),
        backup("postgres", T0, tag="bbbb"),
    )
    with pytest.raises(UsageError) as caught:
        chosen_by_point(index, T0 - timedelta(seconds=1))
    assert caught.value.message == (
        "no good backup of postgres finished by 2026-11-24 02:59 UTC; "
        "the first finished 2026-11-24 03:00 UTC"
    )
    assert caught.value.hint == "pick a later --to, or name a backup id (list the backups)"


def test_a_point_with_no_good_backup_at_all_says_just_that() -> None:
    with pytest.raises(UsageError) as caught:
        chosen_by_point(CatalogIndex(component="minio"), T0)
    assert caught.value.message == "no good backup of minio finished by 2026-11-24 03:00 UTC"


# -- status edges ---------------------------------------------------------------------------------


def test_an_unreachable_source_is_shown_with_its_reason(settings: Settings) -> None:
    index = index_of("postgres", backup("postgres", T0))
    row = component_status(settings, "postgres", index, T0, unreachable="connection refused")
    assert row.unreachable == "connection refused"
    assert component_status(settings, "postgres", index, T0).unreachable is None


def test_a_recoverable_until_at_the_last_backup_keeps_the_backups_own_time(
    settings: Settings,
) -> None:
    index = index_of("postgres", backup("postgres", T0))
    index.facts[FACT_RECOVERABLE_UNTIL] = "2026-11-24T04:00:00+01:00"  # the same instant
    point = component_status(settings, "postgres", index, T0).recovery_point
    assert point is not None and point.isoformat() == "2026-11-24T03:00:00+00:00"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-24T04:00:00+01:00", T0),
        ("2026-11-24T03:00:00", T0),
        (datetime(2026, 11, 24, 4, 0, tzinfo=timezone(timedelta(hours=1))), T0),
        ("not a time", None),
        (1764039600, None),
        (None, None),
    ],
)
def test_fact_times_keep_their_offset_and_read_naive_ones_as_utc(
    value: object, expected: datetime | None
) -> None:
    assert fact_time(value) == expected
