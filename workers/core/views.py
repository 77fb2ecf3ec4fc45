"""Plain-data views of core objects, shared by every front door's JSON output."""

from __future__ import annotations

from typing import Any

from workers.core.catalog import ComponentStatus
from workers.core.config import Settings
from workers.core.durations import format_duration


def status_document(settings: Settings, rows: list[ComponentStatus]) -> dict[str, Any]:
    """The ``status --json`` document: objectives plus one entry per component."""
    return {
        "objectives": {
            "rpo_seconds": settings.objectives.rpo.total_seconds(),
            "rto_seconds": settings.objectives.rto.total_seconds(),
            "rpo": format_duration(settings.objectives.rpo),
            "rto": format_duration(settings.objectives.rto),
        },
        "components": [status_entry(row) for row in rows],
    }


def status_entry(row: ComponentStatus) -> dict[str, Any]:
    """One component's status as JSON-ready data."""
    last = row.last_backup
    return {
        "name": row.name,
        "kind": row.kind,
        "enabled": row.enabled,
        "state": row.freshness.value,
        "last_backup": last.model_dump(mode="json") if last else None,
        "age_seconds": row.age_seconds,
        "recovery_point": row.recovery_point.isoformat() if row.recovery_point else None,
        "rpo_seconds": row.rpo_seconds,
        "rpo_breached": row.rpo_breached,
        "breached_by_seconds": row.breached_by_seconds,
        "frequency_seconds": row.frequency_seconds,
        "next_due": row.next_due.isoformat() if row.next_due else None,
        "retention_seconds": row.retention_seconds,
        "retained": row.retained,
        "oldest": row.oldest.isoformat() if row.oldest else None,
        "last_verification": (
            row.last_verification.model_dump(mode="json") if row.last_verification else None
        ),
        "facts": row.facts,
        "engine": "built" if row.built else "not built",
        "unreachable": row.unreachable,
    }
