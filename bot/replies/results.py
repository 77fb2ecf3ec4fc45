"""What an ended operation's summary says, in words every front door shows.

A restore ends with what it compared (tables and rows, checksums) and its duration against
the RTO; a verification with its verdict, how deep it looked and what it checked. Pure: the
summaries are the JSON the jobs put in their ``finished`` events.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from workers.core.durations import format_duration, humanize

DETAIL_LIMIT = 300
"""Characters of a verification's detail shown on the operation's one line."""


def count(number: int, noun: str = "") -> str:
    """``100,011 rows``: digits grouped, so counts read at a glance; ``1 row``."""
    if not noun:
        return f"{number:,}"
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def seconds_text(seconds: float) -> str:
    """``3.2s`` under a minute (restores are often that quick), else ``4m 10s``."""
    return f"{seconds:.1f}s" if seconds < 60 else humanize(seconds)


def rto_share(seconds: float, rto_seconds: float) -> str:
    """``2m 5s of the 4h RTO (0.9%)``."""
    share = 100.0 * seconds / rto_seconds if rto_seconds else 0.0
    shown = "<0.1%" if 0 < share < 0.1 else f"{share:.1f}%"
    objective = format_duration(timedelta(seconds=rto_seconds))
    return f"{seconds_text(seconds)} of the {objective} RTO ({shown})"


def restore_totals(summary: dict[str, Any]) -> tuple[int, int] | None:
    """Tables and rows a restore read back, over every database; None if it says nothing."""
    tables, rows = summary.get("tables"), summary.get("rows")
    if isinstance(tables, int) and isinstance(rows, int):
        return tables, rows  # point-in-time: counted on the restored instance
    databases = summary.get("databases")
    if isinstance(databases, list) and databases:
        return (
            sum(int(d.get("tables") or 0) for d in databases),
            sum(int(d.get("rows") or 0) for d in databases),
        )
    return None


def restore_facts(summary: dict[str, Any], rto_seconds: float | None) -> list[str]:
    """``5 tables / 152,006 rows compared``, ``checksums match``, ``3.2s of the 4h RTO (<0.1%)``."""
    facts = []
    totals = restore_totals(summary)
    matched = summary.get("checksums_matched")
    if totals is not None:
        verb = "compared" if isinstance(matched, bool) else "counted"
        facts.append(f"{count(totals[0], 'table')} / {count(totals[1], 'row')} {verb}")
    if matched is True:
        facts.append("checksums match")
    elif matched is False:
        differ = [d for d in summary.get("databases", []) if not d.get("checksums_matched")]
        where = ", ".join(str(d.get("database")) for d in differ)
        facts.append(f"CHECKSUMS DIFFER ({where})" if where else "CHECKSUMS DIFFER")
    facts += velero_facts(summary)
    seconds = summary.get("duration_seconds")
    if isinstance(seconds, int | float):
        took = rto_share(seconds, rto_seconds) if rto_seconds else f"in {seconds_text(seconds)}"
        facts.append(took)
    return facts


def velero_facts(summary: dict[str, Any]) -> list[str]:
    """``velero Completed: 6/6 items, 3 warnings, 0 errors`` for a Velero restore, else nothing."""
    phase, total = summary.get("phase"), summary.get("total_items")
    if not isinstance(phase, str) or not isinstance(total, int):
        return []
    warnings, errors = int(summary.get("warnings") or 0), int(summary.get("errors") or 0)
    done = int(summary.get("items") or 0)
    return [
        f"velero {phase}: {done:,}/{count(total, 'item')}, {count(warnings, 'warning')}, "
        f"{count(errors, 'error')}"
    ]


def database_lines(databases: list[dict[str, Any]]) -> list[str]:
    """One line per restored database: ``app -> copy: 2 tables, 3,002 rows, checksums match``."""
    lines = []
    for item in databases:
        match = "checksums match" if item.get("checksums_matched") else "CHECKSUMS DIFFER"
        lines.append(
            f"{item.get('source_database')} -> {item.get('database')}: "
            f"{count(int(item.get('tables') or 0), 'table')}, "
            f"{count(int(item.get('rows') or 0), 'row')}, {match}"
        )
        lines += [f"  {line}" for line in list(item.get("mismatches") or [])[:10]]
    return lines


def verify_facts(summary: dict[str, Any]) -> list[str]:
    """``verification passed (deep): … restored and compared 4 tables / 100,011 rows …``."""
    state = summary.get("verification")
    if not state:
        return []
    verdict = f"verification {state}" + (" (deep)" if summary.get("deep") else "")
    detail = str(summary.get("detail") or "").strip()
    if len(detail) > DETAIL_LIMIT:
        detail = detail[: DETAIL_LIMIT - 1] + "…"
    return [f"{verdict}: {detail}" if detail else verdict]
