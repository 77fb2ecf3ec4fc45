"""RPO monitor policy: breaches become one alert each, and one recovery when they clear.

The monitor runs every minute; this module decides, from the previous alert state, the
catalog's statuses and the count of consecutive failed backups, which ``alert`` and
``recovered`` events to emit. An alert stays open (and silent) while its component stays in
breach; the component's next healthy evaluation closes it with one ``recovered``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict

from workers.core.catalog import FACT_RECOVERABLE_UNTIL, ComponentStatus, fact_time
from workers.core.durations import humanize
from workers.core.errors import Suggestion
from workers.core.model import Model

FAILURE_THRESHOLD = 2
"""A component alerts after this many consecutive failed backups, even within its RPO."""


class AlertState(Model):
    """Whether a component has an open alert, and the operation id its events carry."""

    model_config = ConfigDict(frozen=True)

    active: bool = False
    op_id: str | None = None
    reason: str | None = None
    since: datetime | None = None


class Breach(Model):
    """Why a component is unhealthy right now."""

    model_config = ConfigDict(frozen=True)

    cause: Literal["never", "rpo", "wal", "failures"]
    message: str
    hint: str
    suggestion: Suggestion | None = None
    """The hint's command, kept apart so each front door spells it its own way."""

    @classmethod
    def seeing(cls, cause: Any, message: str, advice: str, *command: str) -> Breach:
        """A breach whose hint is ``advice`` followed by a command (in the CLI's words)."""
        suggestion = Suggestion(advice, command)
        return cls(cause=cause, message=message, hint=suggestion.text(), suggestion=suggestion)


class Decision(Model):
    """One event the monitor must emit, and the component's alert state after it."""

    model_config = ConfigDict(frozen=True)

    component: str
    type: Literal["alert", "recovered"]
    op_id: str
    message: str
    hint: str = ""
    suggestion: Suggestion | None = None
    cause: str | None = None
    state: AlertState


def wal_archive_lag(status: ComponentStatus, now: datetime) -> float | None:
    """Seconds since the newest archived WAL, when the catalog records one (PostgreSQL PITR)."""
    value = fact_time(status.facts.get(FACT_RECOVERABLE_UNTIL))
    if value is None:
        return None
    return max(0.0, (now - value).total_seconds())


def breach(
    status: ComponentStatus, failures: int, now: datetime, threshold: int = FAILURE_THRESHOLD
) -> Breach | None:
    """The component's most telling breach at ``now``, or None when it is healthy."""
    if not status.enabled or not status.built:
        return None  # nothing can back up a kind whose engine is not built: no one can act
    rpo = humanize(status.rpo_seconds)
    name = status.name
    if status.last_backup is None:
        return Breach.seeing(
            "never",
            f"{name} has never been backed up (RPO {rpo})",
            "check the workers on its queue, or run:",
            *("backup", name),
        )
    lag = wal_archive_lag(status, now)
    if lag is not None and lag > status.rpo_seconds:
        return Breach(
            cause="wal",
            message=f"{name}: WAL archiving lags {humanize(lag)} behind (RPO {rpo})",
            hint="check archive_command and the kosmos-postgres worker",
        )
    if status.rpo_breached and status.age_seconds is not None:
        return Breach.seeing(
            "rpo",
            f"{name}: last good backup is {humanize(status.age_seconds)} old (RPO {rpo})",
            "check the scheduler and workers:",
            "ops",
        )
    if failures >= threshold:
        return Breach.seeing(
            "failures",
            f"{name}: {failures} backups failed in a row",
            "see the failures in the operations list; retry:",
            *("backup", name),
        )
    return None


def evaluate(
    previous: Mapping[str, AlertState],
    statuses: Sequence[ComponentStatus],
    failures: Mapping[str, int],
    now: datetime,
    new_id: Callable[[datetime], str],
    threshold: int = FAILURE_THRESHOLD,
) -> tuple[list[Decision], dict[str, AlertState]]:
    """Decide the alert/recovered events for this run and the alert states to keep."""
    decisions: list[Decision] = []
    states: dict[str, AlertState] = {}
    for status in statuses:
        before = previous.get(status.name, AlertState())
        found = breach(status, failures.get(status.name, 0), now, threshold)
        if found is not None and not before.active:
            state = AlertState(active=True, op_id=new_id(now), reason=found.message, since=now)
            decisions.append(_decision(status.name, "alert", found.message, found, state))
        elif found is None and before.active:
            state = AlertState()
            message = _recovered_message(status, before, now)
            decision = Decision(
                component=status.name,
                type="recovered",
                op_id=before.op_id or new_id(now),
                message=message,
                state=state,
            )
            decisions.append(decision)
        else:
            state = before
        states[status.name] = state
    return decisions, states


def _decision(
    component: str, kind: Literal["alert"], message: str, found: Breach, state: AlertState
) -> Decision:
    assert state.op_id is not None
    return Decision(
        component=component,
        type=kind,
        op_id=state.op_id,
        message=message,
        hint=found.hint,
        suggestion=found.suggestion,
        cause=found.cause,
        state=state,
    )


def _recovered_message(status: ComponentStatus, before: AlertState, now: datetime) -> str:
    lasted = f" after {humanize((now - before.since).total_seconds())}" if before.since else ""
    if not status.enabled:
        return f"{status.name}: alert closed, the component is disabled"
    if not status.built:
        return f"{status.name}: alert closed, its engine is not built yet"
    age = f", last good backup {humanize(status.age_seconds)} old" if status.age_seconds else ""
    return f"{status.name}: recovered{lasted}{age}"
