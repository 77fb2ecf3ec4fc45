"""Catalog policy: per-component status (freshness, RPO, due time, retention) from the index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import ConfigDict

from workers.core.config import Settings
from workers.core.errors import UsageError
from workers.core.manifest import BackupSummary, CatalogIndex, VerificationRecord
from workers.core.model import Model

AGING_FRACTION = 0.75
FACT_RECOVERABLE_UNTIL = "recoverable_until"
"""Index fact: the newest restorable instant beyond the last backup (e.g. the last archived WAL)."""


class Freshness(StrEnum):
    """How a component's last good backup stands against its RPO."""

    FRESH = "fresh"
    AGING = "aging"
    BREACHED = "rpo breached"
    NEVER = "never backed up"
    DISABLED = "disabled"
    NOT_BUILT = "not built yet"


class ComponentStatus(Model):
    """What `/backup status` shows for one component."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: str
    enabled: bool
    freshness: Freshness
    last_backup: BackupSummary | None
    age_seconds: float | None
    recovery_point: datetime | None
    rpo_seconds: float
    rpo_breached: bool
    breached_by_seconds: float
    frequency_seconds: float
    next_due: datetime | None
    retention_seconds: float
    retained: int
    oldest: datetime | None
    last_verification: VerificationRecord | None
    facts: dict[str, object] = {}
    built: bool = True
    """Whether the component's engine exists; one that does not is shown, never scheduled."""
    unreachable: str | None = None
    """Why its source cannot be reached right now (no password in it), when a probe says so."""


def good_backups(index: CatalogIndex) -> list[BackupSummary]:
    """Backups that count (committed, not failed verification), oldest first."""
    return [b for b in index.backups if b.verification is None or b.verification.state != "failed"]


def chosen_by_point(index: CatalogIndex, point: datetime) -> BackupSummary:
    """The newest good backup finished at or before ``point`` (``--to``); UsageError if none."""
    before = [b for b in good_backups(index) if b.finished_at <= point]
    if not before:
        first = min((b.finished_at for b in good_backups(index)), default=None)
        since = f"; the first finished {first:%Y-%m-%d %H:%M} UTC" if first else ""
        raise UsageError(
            f"no good backup of {index.component} finished by {point:%Y-%m-%d %H:%M} UTC{since}",
            hint="pick a later --to, or name a backup id (list the backups)",
        )
    return max(before, key=lambda b: (b.finished_at, b.id))


def component_status(
    settings: Settings,
    name: str,
    index: CatalogIndex,
    now: datetime,
    *,
    built: bool = True,
    unreachable: str | None = None,
) -> ComponentStatus:
    """Evaluate one component's freshness at ``now``.

    ``built`` is False for a kind whose engine does not exist yet: nothing can back it up, so
    it is neither due nor in breach (an alert nobody can act on teaches people to ignore them).
    """
    component = settings.component(name)
    rpo = settings.rpo_for(name)
    good = good_backups(index)
    last = good[-1] if good else None
    recovery_point = _recovery_point(last, index)
    age = (now - recovery_point).total_seconds() if recovery_point else None
    watched = component.enabled and built
    breached = watched and (age is None or age > rpo.total_seconds())
    freshness = _freshness(component.enabled, age, rpo)
    if component.enabled and not built:
        freshness = Freshness.NOT_BUILT
    verified = [b.verification for b in index.backups if b.verification is not None]
    return ComponentStatus(
        name=name,
        kind=component.kind,
        enabled=component.enabled,
        freshness=freshness,
        last_backup=last,
        age_seconds=age,
        recovery_point=recovery_point,
        rpo_seconds=rpo.total_seconds(),
        rpo_breached=breached,
        breached_by_seconds=(
            max(0.0, age - rpo.total_seconds()) if age is not None and built else 0.0
        ),
        frequency_seconds=component.frequency.total_seconds(),
        next_due=next_due(last, component.frequency, now) if watched else None,
        retention_seconds=component.retention.total_seconds(),
        retained=len(index.backups),
        oldest=index.backups[0].finished_at if index.backups else None,
        last_verification=max(verified, key=lambda v: v.at) if verified else None,
        facts=dict(index.facts),
        built=built,
        unreachable=unreachable,
    )


def next_due(last: BackupSummary | None, frequency: timedelta, now: datetime) -> datetime:
    """When the next backup is due: one frequency after the last good start, else now."""
    if last is None:
        return now
    return last.started_at + frequency


def _recovery_point(last: BackupSummary | None, index: CatalogIndex) -> datetime | None:
    if last is None:
        return None
    extra = fact_time(index.facts.get(FACT_RECOVERABLE_UNTIL))
    if extra is not None and extra > last.finished_at:
        return extra
    return last.finished_at


def fact_time(value: object) -> datetime | None:
    """A time recorded as an index fact, or None when it is missing or malformed."""
    # Facts are written by engines and read back from JSON: a malformed or naive value must
    # not break the status board, so it is ignored or taken as UTC.
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _freshness(enabled: bool, age: float | None, rpo: timedelta) -> Freshness:
    if not enabled:
        return Freshness.DISABLED
    if age is None:
        return Freshness.NEVER
    if age > rpo.total_seconds():
        return Freshness.BREACHED
    if age > AGING_FRACTION * rpo.total_seconds():
        return Freshness.AGING
    return Freshness.FRESH


def missing_backup(component: str, ref: str) -> str:
    """What is missing when ``ref`` names no backup of ``component``."""
    return f"{component}: " + ("no good backup yet" if ref == "latest" else f"no backup {ref!r}")


def require_backup(index: CatalogIndex, ref: str, *, listing: str) -> BackupSummary:
    """The backup ``ref`` names; a UsageError whose hint is ``listing`` when there is none.

    Front doors call it before they queue anything, so a typo is refused at once.
    """
    found = find_backup(index, ref)
    if found is None:
        raise UsageError(missing_backup(index.component, ref), hint=f"see: {listing}")
    return found


def find_backup(index: CatalogIndex, ref: str) -> BackupSummary | None:
    """Resolve ``latest`` or an id (or a unique id prefix) within one component's index."""
    if not ref:
        return None  # an empty prefix would match the only backup: never a silent pick
    good = good_backups(index)
    if ref == "latest":
        return good[-1] if good else None
    exact = [b for b in index.backups if b.id == ref]
    if exact:
        return exact[0]
    matches = [b for b in index.backups if b.id.startswith(ref)]
    return matches[0] if len(matches) == 1 else None
