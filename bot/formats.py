"""Sizes, moments and verification states as people read them: ``1.4 GiB``, ``3h ago``."""

from __future__ import annotations

from datetime import datetime

from workers.core.durations import humanize
from workers.core.manifest import VerificationRecord


def size(value: int | None) -> str:
    """Bytes for people: 1.4 GiB."""
    if value is None:
        return "–"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"


def when(moment: datetime | None, now: datetime) -> str:
    """``3h ago`` / ``in 20m`` / ``now``."""
    if moment is None:
        return "–"
    delta = (moment - now).total_seconds()
    if abs(delta) < 30:
        return "now"
    return f"in {humanize(delta)}" if delta > 0 else f"{humanize(delta)} ago"


def verified(record: VerificationRecord | None, now: datetime | None = None) -> str:
    """``passed (deep) 3h ago``; ``never`` without a record; no age without ``now``."""
    if record is None:
        return "never"
    text = record.state.value + (" (deep)" if record.deep else "")
    return f"{text} {when(record.at, now)}" if now is not None else text
