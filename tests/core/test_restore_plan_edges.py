"""Restore plans at their edges: the words of each refusal, passwords, jobs no plan covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from workers.core.errors import PermissionDenied, UsageError
from workers.core.operations import ENGINE_TARGET, PostgresRestoreOptions, RestoreParams
from workers.core.restore_plan import (
    RestorePlan,
    check_database_name,
    check_plan,
    has_password,
    job_params,
    lost_in_job,
    plan_from_params,
    plan_mismatch,
    target_fields,
    utc,
)
from workers.core.target_identity import TargetIdentity

BACKUP = "postgres-20261124T0200Z-7f3a"
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
ENQUEUED_ONLY = "restores are enqueued only by an approved request"


def denied_by(component: str, params: RestoreParams) -> PermissionDenied:
    with pytest.raises(PermissionDenied) as caught:
        plan_from_params(component, params)
    return caught.value


def test_a_name_too_long_is_refused_with_what_fits_and_its_first_80_characters() -> None:
    name = "a" * 79 + "bcd"
    with pytest.raises(UsageError) as caught:
        check_database_name(name)
    assert caught.value.message == (
        f"'{'a' * 79}b' is not a database name PostgreSQL keeps as it is (82 bytes)"
    )
    assert caught.value.hint == "choose a target name of 1 to 63 bytes (UTF-8), without NUL"


@pytest.mark.parametrize(
    ("target", "carries"),
    [
        ("app_r", False),
        ("password", False),
        ("host=db dbname=app user=kb", False),
        ("host=db dbname=app PASSWORD=pw", True),
        ("host=db password='p w' dbname=app", True),
        ("postgresql://kb@db/app", False),
        ("postgresql://kb:pw@db/app", True),
        ("postgresql://kb:@db/app", True),
    ],
)
def test_has_password_sees_keyword_and_uri_passwords_only(target: str, carries: bool) -> None:
    assert has_password(target) is carries


def test_a_dsn_target_goes_to_the_job_as_a_dsn_only() -> None:
    dsn = "host=db.internal dbname=app_r user=kb"
    options = job_params(RestorePlan(component="postgres", backup_id=BACKUP, target=dsn)).options
    assert options.target_dsn == dsn
    assert options.target_database is None
    named = job_params(RestorePlan(component="postgres", backup_id=BACKUP, target="app_r"))
    assert named.options.target_database == "app_r"
    assert named.options.target_dsn is None


def test_with_globals_reaches_the_job_and_comes_back_in_its_plan() -> None:
    plan = RestorePlan(component="postgres", backup_id=BACKUP, target="app_r", with_globals=True)
    params = job_params(plan)
    assert params.options.with_globals is True
    assert plan_from_params("postgres", params) == plan
    assert lost_in_job(plan) == []


def test_a_job_without_a_target_describes_no_plan() -> None:
    refused = denied_by("postgres", RestoreParams(backup=BACKUP))
    assert refused.message == "the restore job's parameters describe no plan (target)"
    assert refused.hint == ENQUEUED_ONLY


def test_a_job_with_options_nobody_approved_names_each_of_them() -> None:
    options = PostgresRestoreOptions(target_database="app_r", port=5433, data_dir="/srv/pg")
    refused = denied_by("postgres", RestoreParams(backup=BACKUP, options=options))
    assert refused.message == (
        "the restore job carries parameters no approval covers: data_dir, port"
    )
    assert refused.hint == ENQUEUED_ONLY


def test_an_engine_job_without_its_target_describes_no_plan() -> None:
    params = RestoreParams(backup="secrets-20261124T0300Z-7f3a", engine_options={"env": "prod"})
    refused = denied_by("secrets", params)
    assert refused.message == "the restore job's parameters describe no plan (target)"
    assert refused.hint == ENQUEUED_ONLY


def test_an_engine_job_with_postgres_options_too_is_refused_in_those_words() -> None:
    params = RestoreParams(
        backup="secrets-20261124T0300Z-7f3a",
        engine_options={ENGINE_TARGET: "prod", "env": "prod"},
        options=PostgresRestoreOptions(with_globals=True),
    )
    refused = denied_by("secrets", params)
    assert refused.message == "the restore job carries parameters no approval covers"
    assert refused.hint == ENQUEUED_ONLY


def test_a_field_no_job_carries_is_owned_as_kosmos_backups_own_doing() -> None:
    approved = RestorePlan(component="postgres", backup_id=BACKUP, target="app_r", port=5433)
    job = plan_from_params("postgres", job_params(approved.model_copy(update={"port": None})))
    refused = plan_mismatch("rr-1", approved, job)
    assert refused.message == (
        "kosmos-backup cannot carry out the approved plan of rr-1 as approved: its port does "
        "not reach the restore job. This mismatch is kosmos-backup's own doing; nobody changed "
        "the request"
    )
    assert refused.hint == (
        "nothing was touched; ask again without that option, and report this as a bug"
    )


def test_plans_that_differ_only_in_identity_name_the_targets_identity() -> None:
    plain = RestorePlan(component="postgres", backup_id=BACKUP, target="app_r")
    identified = plain.model_copy(
        update={"target_identity": TargetIdentity(target_id="1", source_id="2")}
    )
    refused = plan_mismatch("rr-1", identified, plain)
    assert "its the target's identity does not reach the restore job" in refused.message


def test_a_job_changed_after_approval_is_refused_with_what_differs() -> None:
    approved = RestorePlan(component="postgres", backup_id=BACKUP, target="app_r")
    job = approved.model_copy(update={"target": "app", "with_globals": True})
    refused = plan_mismatch("rr-1", approved, job)
    assert refused.message == (
        "the job's plan does not match what was approved for rr-1: target, with_globals differ"
    )
    assert refused.hint == (
        "the job was not made from the approved request (changed after approval, or enqueued "
        "by hand); nothing was touched"
    )


@pytest.mark.usefixtures("berlin_clock")
def test_the_window_is_told_in_utc_whatever_the_machines_timezone() -> None:
    berlin = timezone(timedelta(hours=1))
    plan = RestorePlan(component="postgres", backup_id=BACKUP, target="app_r", point=T0)
    start = datetime(2026, 11, 24, 5, 0, tzinfo=berlin)
    with pytest.raises(UsageError) as caught:
        check_plan(plan, live=False, window=(start, start + timedelta(hours=1)))
    assert caught.value.message == "--to 2026-11-24 03:00:00 UTC is outside the recoverable window"
    assert caught.value.hint == (
        "choose a time between 2026-11-24 04:00:00 UTC and 2026-11-24 05:00:00 UTC"
    )


@pytest.mark.parametrize(
    ("target", "fields"),
    [
        ("postgresql:///app_r", {"dbname": "app_r"}),
        ("postgresql://db/X/app", {"host": "db", "dbname": "X/app"}),
        ("postgres://db:5433", {"host": "db", "port": "5433"}),
    ],
)
def test_uri_targets_keep_only_the_parts_they_spell(target: str, fields: dict[str, str]) -> None:
    assert target_fields(target) == fields


def test_a_plan_point_without_a_timezone_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        RestorePlan(
            component="postgres", backup_id=BACKUP, target="app_r", point=datetime(2026, 1, 1)
        )
    [problem] = caught.value.errors()
    assert (problem["loc"], problem["msg"]) == (
        ("point",),
        "Value error, timestamps must carry a timezone",
    )
    assert utc(None) is None


@pytest.mark.usefixtures("berlin_clock")
def test_a_plan_point_is_kept_in_utc_whatever_the_machines_timezone() -> None:
    at = datetime(2026, 11, 24, 4, 0, tzinfo=timezone(timedelta(hours=1)))
    plan = RestorePlan(component="postgres", backup_id=BACKUP, target="app_r", point=at)
    assert plan.point == T0
    assert plan.point is not None and plan.point.tzinfo is UTC
    assert plan.params()["point"] == "2026-11-24T03:00:00Z"


def test_a_plans_job_parameters_are_json_only() -> None:
    plan = RestorePlan(component="postgres", backup_id=BACKUP, target="app_r", point=T0)
    assert plan.params() == {
        "component": "postgres",
        "backup_id": BACKUP,
        "target": "app_r",
        "database": None,
        "point": "2026-11-24T03:00:00Z",
        "in_place": False,
        "base": False,
        "port": None,
        "with_globals": False,
        "options": {},
        "target_identity": None,
    }
