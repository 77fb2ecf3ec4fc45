"""Database names in restore plans: what PostgreSQL keeps, and fresh names that fit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import pg_names
from workers.core.errors import UsageError
from workers.core.restore_plan import (
    MAX_DATABASE_BYTES,
    check_database_name,
    database_name_with,
)


@pytest.mark.parametrize("name", ["a", "-x", "my db", "é" * 31 + "x", "\U0001f418" * 15 + "abc"])
def test_names_of_up_to_63_bytes_are_kept(name: str) -> None:
    check_database_name(name)


@pytest.mark.parametrize(("name", "size"), [("", 0), ("a" * 64, 64), ("é" * 32, 64), ("a\x00b", 3)])
def test_names_postgres_would_cut_or_refuse_are_a_usage_error(name: str, size: int) -> None:
    with pytest.raises(
        UsageError, match=f"not a database name PostgreSQL keeps as it is \\({size}"
    ):
        check_database_name(name)


@given(pg_names, st.sampled_from(["_restored_202611240300", "", "_x"]))
def test_a_fresh_name_fits_and_never_splits_a_character(name: str, suffix: str) -> None:
    made = database_name_with(name, suffix)
    assert made.endswith(suffix) and len(made.encode()) <= MAX_DATABASE_BYTES
    assert name.startswith(made.removesuffix(suffix))
    if len(name.encode()) + len(suffix) <= MAX_DATABASE_BYTES:
        assert made == name + suffix


def test_a_long_name_is_cut_before_the_suffix_on_a_character_boundary() -> None:
    assert database_name_with("é" * 31 + "x", "_restored_1") == "é" * 26 + "_restored_1"
    # 51 bytes of room: the 26th "é" would be split, so it goes whole.
    assert database_name_with("é" * 31 + "x", "_restored_12") == "é" * 25 + "_restored_12"
