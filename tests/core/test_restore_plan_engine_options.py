"""Plans with an engine's own options: digest, job parameters and the worker's rebuilt plan."""

from __future__ import annotations

import pytest

from workers.core.errors import PermissionDenied
from workers.core.operations import RestoreParams
from workers.core.restore_plan import (
    RestorePlan,
    differing,
    job_params,
    lost_in_job,
    plan_from_params,
)

BACKUP = "secrets-20261124T0300Z-7f3a"


def plan(**options: str | bool) -> RestorePlan:
    return RestorePlan(component="secrets", backup_id=BACKUP, target="prod", options=options)


def test_options_round_trip_through_the_job() -> None:
    chosen = plan(target_env="prod")
    params = job_params(chosen)
    assert params.restore_kwargs() == {"target_env": "prod"}
    assert plan_from_params("secrets", params) == chosen
    assert lost_in_job(chosen) == []


def test_options_are_in_the_digest_and_plans_without_them_digest_as_before() -> None:
    assert plan(target_env="prod").digest() != plan(target_env="staging").digest()
    bare = RestorePlan(component="secrets", backup_id=BACKUP, target="prod")
    assert b"options" not in bare.canonical()


def test_a_job_with_options_no_approval_covers_is_refused() -> None:
    approved = job_params(plan(target_env="prod"))
    widened = approved.model_copy(
        update={"engine_options": {**approved.engine_options, "target_env": "staging"}}
    )
    # The worker compares the plan the job would carry out with the approved one.
    assert differing(plan(target_env="prod"), plan_from_params("secrets", widened)) == ["options"]
    with_db = RestoreParams.model_validate(
        {**approved.model_dump(), "options": {"target_database": "other"}}
    )
    with pytest.raises(PermissionDenied, match="no approval covers"):
        plan_from_params("secrets", with_db)
