"""Operation requests: each kind reads its own parameters, and bad ones are named in one line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from workers.core.config import shown_url
from workers.core.errors import UsageError
from workers.core.operations import (
    BackupParams,
    OperationKind,
    OperationRequest,
    PostgresRestoreOptions,
    VerifyParams,
    describe,
)

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


class Pair(BaseModel):
    count: int
    name: str


def test_describe_names_every_problem_where_it_is_without_the_input() -> None:
    with pytest.raises(ValidationError) as caught:
        Pair.model_validate({"count": "many", "name": 7})
    assert describe(caught.value) == (
        "count: Input should be a valid integer, unable to parse string as an integer; "
        "name: Input should be a valid string"
    )
    assert describe(caught.value, within="params").startswith("params.count: Input should")
    with pytest.raises(ValidationError) as whole:
        Pair.model_validate("not a mapping")
    assert describe(whole.value) == "Input should be a valid dictionary or instance of Pair"


def test_a_request_with_params_of_another_kind_is_refused_by_its_job() -> None:
    request = OperationRequest(
        op_id="op-1", kind=OperationKind.BACKUP, params=BackupParams(), requested_at=NOW
    )
    assert BackupParams.of(request) is request.params
    with pytest.raises(UsageError) as caught:
        VerifyParams.of(request)
    assert (caught.value.message, caught.value.hint) == (
        "a backup request carries no VerifyParams",
        "the job and its producer disagree: upgrade both",
    )


def test_bad_params_are_named_under_params() -> None:
    with pytest.raises(ValidationError, match=r"params\.deep: Input should be a valid boolean"):
        OperationRequest.model_validate(
            {"op_id": "op-1", "kind": "verify", "params": {"deep": "x"}, "requested_at": NOW}
        )


def test_engine_options_are_every_option_by_name() -> None:
    options = PostgresRestoreOptions(target_database="app_r", with_globals=True, port=5433)
    taken = options.engine_options()
    assert taken == {name: getattr(options, name) for name in PostgresRestoreOptions.model_fields}
    assert (taken["target_database"], taken["with_globals"], taken["port"]) == ("app_r", True, 5433)
    assert taken["in_place"] is False and taken["target_time"] is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@10.0.0.2:6379/0", "redis://:***@10.0.0.2:6379/0"),
        ("redis://kb:s3cret@host/1", "redis://kb:***@host/1"),
        ("redis://host:6379/0?password=s3cret&db=2", "redis://host:6379/0?password=***&db=2"),
        ("redis://host/0?db=2&PASSWORD=x", "redis://host/0?db=2&password=***"),
        ("redis://kb@host:6379/0", "redis://kb@host:6379/0"),
        ("embedded", "embedded"),
    ],
)
def test_shown_urls_hide_every_password(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_a_validators_refusal_reads_without_pydantics_value_error_prefix() -> None:
    with pytest.raises(ValidationError) as caught:
        OperationRequest(
            op_id="op-1", kind=OperationKind.BACKUP, params=VerifyParams(), requested_at=NOW
        )
    assert describe(caught.value) == "backup takes BackupParams, not VerifyParams"
    with pytest.raises(ValidationError) as nested:
        OperationRequest.model_validate(
            {"op_id": "op-1", "kind": "verify", "params": {"deep": "x"}, "requested_at": NOW}
        )
    assert describe(nested.value) == (
        "params.deep: Input should be a valid boolean, unable to interpret input"
    )
