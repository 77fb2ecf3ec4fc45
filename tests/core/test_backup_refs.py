"""A backup named by ref: latest, an id or a unique prefix; anything else refused in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workers.core.catalog import find_backup, missing_backup, require_backup
from workers.core.errors import UsageError
from workers.core.manifest import BackupSummary, CatalogIndex, VerificationRecord, VerificationState

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def backup(hour: int, tag: str, failed: bool = False) -> BackupSummary:
    started = T0 + timedelta(hours=hour)
    record = VerificationRecord(state=VerificationState.FAILED, at=started, detail="bad")
    return BackupSummary(
        id=f"postgres-{started:%Y%m%dT%H%MZ}-{tag}",
        component="postgres",
        kind="postgres-logical",
        started_at=started,
        finished_at=started + timedelta(minutes=1),
        size=1,
        objects=1,
        verification=record if failed else None,
    )


def index_of(*backups: BackupSummary) -> CatalogIndex:
    index = CatalogIndex(component="postgres")
    for item in backups:
        index.upsert(item)
    return index


def test_latest_is_the_newest_good_backup_and_ids_and_prefixes_name_one() -> None:
    old, good, bad = backup(0, "aaaa"), backup(1, "bbbb"), backup(2, "cccc", failed=True)
    index = index_of(old, good, bad)
    assert find_backup(index, "latest") == good
    assert find_backup(index, bad.id) == bad  # named outright, even a failed one
    assert find_backup(index, "postgres-20261124T0300Z") == old
    assert find_backup(index, "postgres-20261124T0") is None  # ambiguous: never a guess
    assert find_backup(index, "") is None
    assert find_backup(index_of(bad), "latest") is None


def test_a_missing_ref_is_refused_naming_the_listing() -> None:
    index = index_of(backup(0, "aaaa"))
    assert require_backup(index, "latest", listing="x") == index.backups[0]
    with pytest.raises(UsageError) as caught:
        require_backup(index, "postgres-2020", listing="/backup list postgres")
    assert (caught.value.message, caught.value.hint) == (
        "postgres: no backup 'postgres-2020'",
        "see: /backup list postgres",
    )
    with pytest.raises(UsageError) as empty:
        require_backup(index_of(), "latest", listing="kosmos-backup list postgres")
    assert (empty.value.message, empty.value.hint) == (
        "postgres: no good backup yet",
        "see: kosmos-backup list postgres",
    )
    assert missing_backup("etcd", "latest") == "etcd: no good backup yet"
