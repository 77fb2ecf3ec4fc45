"""Durations: the text form people write in config, and its round trip."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from workers.core.durations import Duration, format_duration, humanize, parse_duration

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Up to about 27,000 years: far past any retention, well inside timedelta's range.
whole_seconds = st.integers(min_value=1, max_value=10**12)


class Holder(BaseModel):
    every: Duration


@settings(deadline=None)
@given(whole_seconds)
def test_format_then_parse_is_identity(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


@settings(deadline=None)
@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(sorted(UNITS)))
def test_parse_then_format_is_canonical(value: int, unit: str) -> None:
    text = f"{value}{unit}"
    parsed = parse_duration(text)
    assert parsed == timedelta(seconds=value * UNITS[unit])
    canonical = format_duration(parsed)
    # The canonical form is the largest unit that divides exactly, and it is stable.
    assert parse_duration(canonical) == parsed
    assert format_duration(parse_duration(canonical)) == canonical
    number, largest = int(canonical[:-1]), canonical[-1]
    bigger = [u for u in ("m", "h", "d") if UNITS[u] > UNITS[largest]]
    assert all((number * UNITS[largest]) % UNITS[u] for u in bigger)


@settings(deadline=None)
@given(whole_seconds)
def test_pydantic_json_round_trip(seconds: int) -> None:
    holder = Holder(every=timedelta(seconds=seconds))
    dumped = holder.model_dump_json()
    assert Holder.model_validate_json(dumped) == holder
    assert f'"{format_duration(holder.every)}"' in dumped


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("6h", timedelta(hours=6)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(days=14)),
        (" 7 d ", timedelta(days=7)),
    ],
)
def test_reads_the_documented_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert Holder(every=text).every == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["30x", "", "h", "1.5h", "-1h", "0s", "1h30m", "1 hour", "d30"])
def test_rejects_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("value", ["99999999999d", 10**30, -5, 0, True, float("inf"), None])
def test_field_rejects_bad_values_as_validation_errors(value: object) -> None:
    # Overflow and nonsense must surface as a ValidationError (a one-line config message),
    # never as an OverflowError traceback.
    with pytest.raises(ValidationError):
        Holder(every=value)  # type: ignore[arg-type]


def test_field_takes_bare_numbers_as_seconds() -> None:
    assert Holder(every=90).every == timedelta(seconds=90)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (42, "42s"),
        (-42, "42s"),
        (17 * 60 + 5, "17m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60, "3h 5m"),
        (2 * 86400, "2d"),
        (2 * 86400 + 4 * 3600 + 59, "2d 4h"),
    ],
)
def test_humanize(seconds: float, text: str) -> None:
    assert humanize(seconds) == text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "True is not a duration"),
        (0, "0 is not a positive duration"),
        (-1.5, "-1.5 is not a positive duration"),
        (float("inf"), "inf is not a positive duration"),
        (10**30, f"{10**30} is too long to be a duration"),
        ("99999999999d", "'99999999999d' is too long to be a duration"),
        ("0s", "'0s' is not a positive duration"),
        ("soon", "'soon' is not a duration (use e.g. 90s, 15m, 1h, 6h, 30d)"),
    ],
)
def test_a_refused_value_is_named_in_its_message(value: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Holder(every=value)  # type: ignore[arg-type]
    assert caught.value.errors()[0]["msg"] == f"Value error, {message}"


@pytest.mark.parametrize(
    ("value", "expected"), [(1, timedelta(seconds=1)), (0.5, timedelta(milliseconds=500))]
)
def test_any_positive_bare_number_is_seconds(value: float, expected: timedelta) -> None:
    assert Holder(every=value).every == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (59, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h"),
        (3600 + 59, "1h"),
        (3600 + 60, "1h 1m"),
        (86399, "23h 59m"),
        (86400, "1d"),
        (86400 + 3599, "1d"),
        (86400 + 3600, "1d 1h"),
        (86400 + 7200, "1d 2h"),
    ],
)
def test_humanize_at_each_unit_boundary(seconds: int, text: str) -> None:
    assert humanize(seconds) == text


@pytest.mark.parametrize("value", [None, 90, b"90s"])
def test_what_is_not_text_is_not_a_duration_to_parse(value: object) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(value)  # type: ignore[arg-type]
    assert str(caught.value) == f"{value!r} is not a duration (use e.g. 90s, 15m, 1h, 6h, 30d)"
