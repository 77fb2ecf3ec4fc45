"""WAL file names and chain continuity: the arithmetic verify relies on."""

from __future__ import annotations

import pytest

from workers.engines.postgres.cluster import RecoverySettings, quote_setting
from workers.engines.postgres.wal_archive import (
    Segment,
    check_chain,
    hash_dir,
    is_segment,
    is_wal_name,
    strip_compression,
)

MB16 = 16 << 20


def test_wal_names_are_recognised_and_everything_else_is_not() -> None:
    for name in (
        "000000010000000000000007",
        "00000002.history",
        "000000010000000000000007.00000028.backup",
        "000000010000000000000007.partial",
    ):
        assert is_wal_name(name), name
    for name in ("", "0000000100000000000000070", "../000000010000000000000007", "x.history"):
        assert not is_wal_name(name), name
    assert is_segment("000000010000000000000007")
    assert not is_segment("00000002.history")


def test_hash_dir_and_compression_suffixes_follow_barman_layout() -> None:
    assert hash_dir("0000000100000002000000FF") == "0000000100000002"
    assert hash_dir("00000002.history") == ""
    assert strip_compression("000000010000000000000007.zst") == "000000010000000000000007"
    assert strip_compression("00000002.history.gz") == "00000002.history"


@pytest.mark.parametrize(
    ("name", "size", "expected"),
    [
        ("000000010000000000000007", MB16, "000000010000000000000008"),
        ("0000000100000000000000FF", MB16, "000000010000000100000000"),
        ("000000010000000000000FFF", 1 << 20, "000000010000000100000000"),
        ("000000010000000000000FFE", 1 << 20, "000000010000000000000FFF"),
    ],
)
def test_next_segment_wraps_at_the_segment_size(name: str, size: int, expected: str) -> None:
    assert Segment.parse(name).next(size).name == expected


def test_segment_holding_a_wal_position() -> None:
    assert Segment.holding("0/700100", 1, 1 << 20).name == "000000010000000000000007"
    assert Segment.holding("1/FF000000", 3, MB16).name == "0000000300000001000000FF"


def test_chain_check_reports_the_first_gap_and_ignores_other_timelines() -> None:
    names = [
        "000000010000000000000006",
        "000000010000000000000007",
        "000000010000000000000008",
        "00000001000000000000000A",
        "000000020000000000000009",
        "00000002.history",
    ]
    chain = check_chain(names, "000000010000000000000007", MB16)
    assert (chain.last_contiguous, chain.missing, chain.newest) == (
        "000000010000000000000008",
        "000000010000000000000009",
        "00000001000000000000000A",
    )
    assert not chain.continuous
    whole = check_chain(names[:3], "000000010000000000000007", MB16)
    assert whole.continuous and whole.last_contiguous == "000000010000000000000008"
    absent = check_chain(names[:1], "000000010000000000000007", MB16)
    assert absent.last_contiguous is None and absent.missing == "000000010000000000000007"


def test_recovery_settings_quote_values_and_never_archive() -> None:
    lines = RecoverySettings(
        restore_command="/opt/kb --config '/tmp/a b.json' wal-fetch %f %p",
        target_lsn="0/7000100",
        inclusive=False,
        port=5544,
    ).lines()
    text = "\n".join(lines)
    assert "archive_mode = 'off'" in text
    assert "recovery_target_inclusive = 'off'" in text
    assert "recovery_target_lsn = '0/7000100'" in text
    assert "port = '5544'" in text
    assert quote_setting("it's") == "'it''s'"
