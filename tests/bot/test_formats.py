"""Sizes, moments and verification states as people read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.formats import size, verified, when
from workers.core.manifest import VerificationRecord, VerificationState

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "–"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536 * 1024, "1.5 MiB"),
        (int(1.4 * 1024**3), "1.4 GiB"),
        (5 * 1024**5, "5120.0 TiB"),
    ],
)
def test_sizes_read_in_binary_units(value: int | None, shown: str) -> None:
    assert size(value) == shown


def test_moments_read_relative_to_now() -> None:
    assert when(None, NOW) == "–"
    assert when(NOW - timedelta(seconds=29), NOW) == "now"
    assert when(NOW - timedelta(hours=3), NOW) == "3h ago"
    assert when(NOW + timedelta(minutes=20), NOW) == "in 20m"


def test_a_verification_reads_its_state_depth_and_age() -> None:
    deep = VerificationRecord(
        state=VerificationState.PASSED, at=NOW - timedelta(hours=3), deep=True
    )
    assert verified(None) == "never"
    assert verified(deep) == "passed (deep)"
    assert verified(deep, NOW) == "passed (deep) 3h ago"
    shallow = VerificationRecord(state=VerificationState.FAILED, at=NOW)
    assert verified(shallow, NOW) == "failed now"
