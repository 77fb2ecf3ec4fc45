"""Restore targets spelled every way: the fields of a DSN, its label, its server, and the checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workers.core.errors import UsageError
from workers.core.restore_plan import (
    RestorePlan,
    check_plan,
    redact_target,
    same_server,
    target_fields,
)

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
BACKUP = "postgres-20261124T0200Z-7f3a"


@pytest.mark.parametrize(
    ("target", "fields"),
    [
        ("app_r", {"dbname": "app_r"}),
        (
            "postgresql://kb:pw@db.internal:5433/app%20r",
            {"host": "db.internal", "port": "5433", "dbname": "app r", "user": "kb"},
        ),
        ("postgresql://db.internal", {"host": "db.internal"}),
        (
            "host=db port=5433 DBNAME='my \\'db\\'' user=kb password=pw",
            {"host": "db", "port": "5433", "dbname": "my 'db'", "user": "kb"},
        ),
    ],
)
def test_target_fields_read_names_uris_and_keywords_without_the_password(
    target: str, fields: dict[str, str]
) -> None:
    assert target_fields(target) == fields


@pytest.mark.parametrize(
    ("target", "label"),
    [
        ("app_r", "app_r"),
        ("host=db port=5433 dbname=app user=kb password=pw", "kb@db:5433/app"),
        ("dbname=app", "localhost/app"),
        ("postgresql://db.internal", "db.internal/"),
    ],
)
def test_labels_never_show_a_password(target: str, label: str) -> None:
    assert redact_target(target) == label


def test_the_same_server_by_spelling() -> None:
    source = "host=127.0.0.1 port=5432 dbname=postgres"
    assert same_server("app_r", source)
    assert same_server("host=localhost dbname=x", source)
    assert same_server("host=/var/run/postgresql port=5432 dbname=x", source)
    assert same_server("host=::1 dbname=x", "dbname=postgres")
    assert not same_server("host=127.0.0.1 port=5433 dbname=x", source)
    assert not same_server("host=db.internal dbname=x", source)


def refusal(plan: RestorePlan, live: bool, window: tuple[datetime, datetime] | None) -> tuple:
    with pytest.raises(UsageError) as caught:
        check_plan(plan, live=live, window=window)
    return caught.value.message, caught.value.hint


def test_each_plan_check_says_why_and_what_to_do() -> None:
    plain = RestorePlan(component="postgres", backup_id=BACKUP, target="app")
    assert refusal(plain, True, None) == (
        "target app is the live source",
        "restore into a new name with --target NAME, or say --in-place deliberately",
    )
    in_place = plain.model_copy(update={"in_place": True})
    check_plan(in_place, live=True, window=None)
    assert refusal(in_place, False, None) == (
        "--in-place given but app is not the live source",
        "drop --in-place to restore into a new database",
    )
    timed = plain.model_copy(update={"point": T0})
    assert refusal(timed, False, None) == (
        f"{BACKUP} cannot be restored to a chosen time",
        "--to needs continuous archiving (a base backup with its WAL)",
    )
    second = timedelta(seconds=1)
    check_plan(timed, live=False, window=(T0, T0))  # both ends are inside
    assert refusal(timed, False, (T0 + second, T0 + 2 * second)) == (
        "--to 2026-11-24 03:00:00 UTC is outside the recoverable window",
        "choose a time between 2026-11-24 03:00:01 UTC and 2026-11-24 03:00:02 UTC",
    )
    assert refusal(timed, False, (T0 - 2 * second, T0 - second))[0].endswith("window")
