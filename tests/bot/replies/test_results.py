"""Ended operations in words: restores against the RTO, verifications by depth."""

from __future__ import annotations

from bot.replies.results import database_lines, restore_facts, rto_share, verify_facts

RTO = 4 * 3600.0


def test_a_dump_restore_says_what_it_compared_and_its_share_of_the_rto() -> None:
    summary = {
        "backup_id": "postgres-20261124T0300Z-7f3a",
        "duration_seconds": 125.0,
        "checksums_matched": False,
        "databases": [
            {
                "source_database": "app",
                "database": "app_copy",
                "tables": 3,
                "rows": 100_000,
                "checksums_matched": True,
            },
            {
                "source_database": "crm",
                "database": "crm_copy",
                "tables": 1,
                "rows": 11,
                "checksums_matched": False,
                "mismatches": ["public.t: 11 rows, backup had 12"],
            },
        ],
    }
    assert restore_facts(summary, RTO) == [
        "4 tables / 100,011 rows compared",
        "CHECKSUMS DIFFER (crm_copy)",
        "2m of the 4h RTO (0.9%)",
    ]
    assert restore_facts(summary, None)[-1] == "in 2m"
    assert database_lines(summary["databases"]) == [
        "app -> app_copy: 3 tables, 100,000 rows, checksums match",
        "crm -> crm_copy: 1 table, 11 rows, CHECKSUMS DIFFER",
        "  public.t: 11 rows, backup had 12",
    ]


def test_a_point_in_time_restore_counts_rows_it_has_no_checksums_to_compare() -> None:
    summary = {"tables": 7, "rows": 1234, "databases": {"app": {}}, "duration_seconds": 2.5}
    facts = restore_facts(summary, RTO)
    assert facts == ["7 tables / 1,234 rows counted", "2.5s of the 4h RTO (<0.1%)"]
    assert rto_share(3 * 3600, RTO) == "3h of the 4h RTO (75.0%)"


def test_a_verification_says_its_verdict_and_depth() -> None:
    assert verify_facts({"verification": "passed", "deep": True, "detail": "all match"}) == [
        "verification passed (deep): all match"
    ]
    assert verify_facts({"verification": "failed", "detail": "x" * 400})[0].endswith("x…")
    assert verify_facts({"backup_id": "b"}) == []


def test_a_velero_restore_says_what_velero_did() -> None:
    summary = {
        "phase": "Completed",
        "items": 1200,
        "total_items": 1200,
        "warnings": 1,
        "errors": 0,
        "duration_seconds": 30.0,
    }
    assert restore_facts(summary, RTO) == [
        "velero Completed: 1,200/1,200 items, 1 warning, 0 errors",
        "30.0s of the 4h RTO (0.2%)",
    ]
    assert restore_facts({"phase": "Completed", "duration_seconds": 30.0}, None) == ["in 30.0s"]
