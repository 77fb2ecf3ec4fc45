"""Folding events into an operation's view: idempotent, ordered by time, sticky at the end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.replies.progress import Stage, fold, percent_of, stage_text
from workers.core.events import ChatContext, Event, EventType

T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def event(kind: EventType, seconds: int, **fields: Any) -> Event:
    return Event(
        op_id="op-1",
        type=kind,
        at=T0 + timedelta(seconds=seconds),
        operation="backup",
        component="postgres",
        chat=ChatContext(source="slack", channel="C1"),
        **fields,
    )


LIFE = [
    event(EventType.ACCEPTED, 0),
    event(EventType.STARTED, 1),
    event(EventType.PROGRESS, 2, phase="dump", done_bytes=10, total_bytes=100),
    event(EventType.NOTE, 3, note="dumped"),
    event(EventType.PROGRESS, 4, phase="upload", done_bytes=80, total_bytes=100),
    event(EventType.FINISHED, 5, summary={"backup_id": "postgres-x", "size": 99}),
]


def fold_all(events: list[Event]) -> Any:
    view = None
    for item in events:
        view = fold(view, item)
    return view


def test_a_whole_life_ends_done_with_its_summary() -> None:
    view = fold_all(LIFE)
    assert view.stage == Stage.DONE
    assert view.summary == {"backup_id": "postgres-x", "size": 99}
    assert stage_text(view) == "done · 99 B · in 4s · backup postgres-x"


def test_folding_is_idempotent_and_the_end_is_sticky() -> None:
    once = fold_all(LIFE)
    assert fold_all(LIFE + LIFE) == once
    assert fold(once, event(EventType.PROGRESS, 9, phase="late", done_bytes=1)) == once


def test_an_older_progress_report_does_not_move_the_figures_back() -> None:
    newer = fold_all(LIFE[:5])
    assert (newer.phase, percent_of(newer)) == ("upload", 80.0)
    assert fold(newer, LIFE[2]) == newer


def test_a_failure_keeps_its_message_and_hint() -> None:
    view = fold_all([*LIFE[:3], event(EventType.FAILED, 6, message="boom", hint="look")])
    assert (view.stage, view.message, view.hint) == (Stage.FAILED, "boom", "look")
    assert stage_text(view) == "failed: boom"
