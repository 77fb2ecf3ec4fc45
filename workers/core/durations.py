"""Human durations: ``90s``, ``15m``, ``1h``, ``6h``, ``30d``, and back."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse ``<number><unit>`` (s, m, h, d, w) into a timedelta, or raise ValueError."""
    match = _PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a duration (use e.g. 90s, 15m, 1h, 6h, 30d)")
    value = int(match.group(1))
    if value <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return _seconds(value * _UNITS[match.group(2)], text)


def _seconds(seconds: float, shown: object) -> timedelta:
    # timedelta raises OverflowError past ~2.7 million years; a typo like 99999999999d must
    # still be a one-line config error, not a traceback.
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"{shown!r} is too long to be a duration") from None


def format_duration(delta: timedelta) -> str:
    """Render a timedelta in the largest unit that divides it exactly."""
    seconds = int(delta.total_seconds())
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def humanize(seconds: float) -> str:
    """Approximate age for people: ``42s``, ``17m``, ``3h 5m``, ``2d 4h``."""
    seconds = int(abs(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        return f"{hours}h {rest // 60}m" if rest >= 60 else f"{hours}h"
    days, rest = divmod(seconds, 86400)
    return f"{days}d {rest // 3600}h" if rest >= 3600 else f"{days}d"


def _coerce(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        # A bare number means seconds; like the text form it must be positive.
        if not value > 0 or value == float("inf"):
            raise ValueError(f"{value!r} is not a positive duration")
        return _seconds(value, value)
    return parse_duration(str(value))


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A pydantic field type that reads and writes human durations."""
