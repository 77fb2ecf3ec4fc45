"""Backup and operation ids: typeable, parseable, sortable by time."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import component_names
from workers.core.ids import (
    BACKUP_ID,
    COMPONENT_NAME,
    new_backup_id,
    new_operation_id,
    parse_backup_id,
)

offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
# A day of margin at both ends so that converting any offset to UTC stays in range.
moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
)


def minute_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


@settings(deadline=None)
@given(component_names, moments)
def test_id_parses_back_to_component_and_minute(component: str, moment: datetime) -> None:
    assert COMPONENT_NAME.match(component)
    backup_id = new_backup_id(component, moment)
    assert BACKUP_ID.match(backup_id)
    parsed_component, parsed_minute = parse_backup_id(backup_id)
    assert parsed_component == component
    assert parsed_minute == minute_of(moment)
    assert parsed_minute.tzinfo is not None


@settings(deadline=None)
@given(component_names, st.lists(moments, min_size=2, max_size=8))
def test_ids_of_one_component_sort_by_time(component: str, instants: list[datetime]) -> None:
    ids = [new_backup_id(component, moment) for moment in instants]
    by_text = sorted(ids)
    assert [parse_backup_id(i)[1] for i in by_text] == sorted(minute_of(m) for m in instants)


@settings(deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_naive_times_are_taken_as_utc(moment: datetime) -> None:
    # Never the machine's local time: an id must not depend on where it was made.
    _, minute = parse_backup_id(new_backup_id("etcd", moment))
    assert minute == moment.replace(tzinfo=UTC, second=0, microsecond=0)


def test_example_from_the_issue() -> None:
    moment = datetime(2026, 11, 24, 3, 0, 41, tzinfo=UTC)
    assert new_backup_id("postgres", moment, tag="7f3a") == "postgres-20261124T0300Z-7f3a"
    assert parse_backup_id("postgres-20261124T0300Z-7f3a") == (
        "postgres",
        datetime(2026, 11, 24, 3, 0, tzinfo=UTC),
    )


def test_tags_make_ids_of_one_minute_distinct() -> None:
    moment = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    ids = {new_backup_id("minio", moment) for _ in range(50)}
    assert len(ids) > 40


@pytest.mark.parametrize("name", ["Postgres", "1pg", "pg_main", "pg-", "-pg", "pg--x", ""])
def test_invalid_component_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="component name"):
        new_backup_id(name, datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("tag", ["7F3A", "7f3", "7f3a1", "zzzz"])
def test_invalid_tags_are_refused(tag: str) -> None:
    with pytest.raises(ValueError, match="tag"):
        new_backup_id("postgres", datetime(2026, 1, 1, tzinfo=UTC), tag=tag)


@pytest.mark.parametrize(
    "text",
    [
        "bogus",
        "postgres-20261124T0300-7f3a",
        "postgres-20261124T0300Z-7F3A",
        "postgres-20261324T0300Z-7f3a",  # month 13
        "postgres-20261124T2500Z-7f3a",  # hour 25
        "Postgres-20261124T0300Z-7f3a",
        "pg--x-20261124T0300Z-7f3a",
        "postgres-20261124T0300Z-7f3a/../x",
        "postgres-\u0662\u0660\u0662\u0666\u0661\u0661\u0662\u0664T0300Z-7f3a",  # Arabic digits
    ],
)
def test_malformed_ids_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a backup id"):
        parse_backup_id(text)


def test_operation_ids_sort_by_time_and_are_unique() -> None:
    start = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    ids = [new_operation_id(start + timedelta(seconds=s)) for s in (0, 1, 59, 3600)]
    assert ids == sorted(ids)
    assert ids[0].startswith("op-20261124T030000Z-")
    assert new_operation_id(start) != new_operation_id(start)
    assert new_operation_id(datetime(999, 1, 1, tzinfo=UTC)).startswith("op-09990101T000000Z-")


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local time zone nine hours ahead of UTC, as on a server in Tokyo."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_ids_do_not_depend_on_the_machines_time_zone(far_from_utc: None) -> None:
    naive = datetime(2026, 11, 24, 3, 0, 41)
    aware = datetime(2026, 11, 24, 12, 0, 41, tzinfo=timezone(timedelta(hours=9)))
    for moment in (naive, aware):
        assert new_backup_id("postgres", moment, tag="7f3a") == "postgres-20261124T0300Z-7f3a"
        assert new_operation_id(moment).startswith("op-20261124T030041Z-")


def test_an_operation_id_ends_in_six_hex_digits() -> None:
    op_id = new_operation_id(datetime(2026, 11, 24, 3, 0, 41, tzinfo=UTC))
    assert re.fullmatch(r"op-20261124T030041Z-[0-9a-f]{6}", op_id)
