"""The status entry as JSON: every field under its name, times as ISO text, absent as null."""

from __future__ import annotations

from datetime import UTC, datetime

from workers.core.catalog import ComponentStatus, Freshness
from workers.core.manifest import BackupSummary, VerificationRecord, VerificationState
from workers.core.views import status_entry

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LAST = BackupSummary(
    id="postgres-20261124T1100Z-ab12",
    component="postgres",
    kind="postgres-logical",
    started_at=datetime(2026, 11, 24, 11, 0, tzinfo=UTC),
    finished_at=datetime(2026, 11, 24, 11, 1, tzinfo=UTC),
    size=10,
    objects=1,
)
CHECKED = VerificationRecord(state=VerificationState.PASSED, at=NOW, detail="ok")


def row(**changes: object) -> ComponentStatus:
    fields: dict[str, object] = {
        "name": "postgres",
        "kind": "postgres",
        "enabled": True,
        "freshness": next(iter(Freshness)),
        "last_backup": LAST,
        "age_seconds": 3540.0,
        "recovery_point": LAST.finished_at,
        "rpo_seconds": 3600.0,
        "rpo_breached": False,
        "breached_by_seconds": 0.0,
        "frequency_seconds": 3600.0,
        "next_due": NOW,
        "retention_seconds": 86400.0,
        "retained": 3,
        "oldest": LAST.started_at,
        "last_verification": CHECKED,
        "facts": {"wal": "on"},
        "unreachable": "refused",
    }
    return ComponentStatus.model_validate(fields | changes)


def test_a_full_row_names_every_field() -> None:
    status = row()
    assert status_entry(status) == {
        "name": "postgres",
        "kind": "postgres",
        "enabled": True,
        "state": status.freshness.value,
        "last_backup": LAST.model_dump(mode="json"),
        "age_seconds": 3540.0,
        "recovery_point": "2026-11-24T11:01:00+00:00",
        "rpo_seconds": 3600.0,
        "rpo_breached": False,
        "breached_by_seconds": 0.0,
        "frequency_seconds": 3600.0,
        "next_due": "2026-11-24T12:00:00+00:00",
        "retention_seconds": 86400.0,
        "retained": 3,
        "oldest": "2026-11-24T11:00:00+00:00",
        "last_verification": {"state": "passed", **CHECKED.model_dump(mode="json")},
        "facts": {"wal": "on"},
        "engine": "built",
        "unreachable": "refused",
    }


def test_what_is_absent_is_null_and_an_unbuilt_engine_says_so() -> None:
    entry = status_entry(
        row(
            enabled=False,
            last_backup=None,
            recovery_point=None,
            next_due=None,
            oldest=None,
            last_verification=None,
            built=False,
            breached_by_seconds=5.0,
        )
    )
    assert entry["enabled"] is False and entry["breached_by_seconds"] == 5.0
    nulls = ("last_backup", "recovery_point", "next_due", "oldest", "last_verification")
    assert {k: entry[k] for k in nulls} == dict.fromkeys(nulls)
    assert entry["engine"] == "not built"
