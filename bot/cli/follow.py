"""Following an operation in the terminal: its events as a live rich progress bar."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from bot.formats import size
from bot.replies.results import restore_facts, verify_facts
from workers import queues
from workers.core.durations import humanize
from workers.core.events import Event, EventType

QUEUED_WARNING = 15.0
"""Seconds queued without a start before the terminal asks whether a worker is running."""
STATE_POLL_SECONDS = 3.0
"""How often the op record is checked too, in case its end left the (trimmed) stream."""


def describe_end(event: Event, rto_seconds: float | None = None) -> str:
    """One line for a terminal event: what was made or found, or what went wrong."""
    if event.type == EventType.FAILED:
        return f"[red]✗ {event.operation} failed:[/] {event.message or event.error_class}"
    summary = event.summary
    if event.operation == "restore" and summary:
        facts = restore_facts(summary, rto_seconds)
        done = f"{summary.get('backup_id', '')}: " + " · ".join(facts)
        return f"[green]✓ restore finished:[/] {escape(done)}"
    if "backup_id" in summary and "size" in summary:
        took = humanize(float(summary.get("duration_seconds") or 0))
        return (
            f"[green]✓ {event.operation} finished:[/] {summary['backup_id']}, "
            f"{size(summary['size'])} in {took} ({summary.get('objects', '?')} objects)"
        )
    if "count" in summary:
        verb = "would delete" if summary.get("dry_run") else "deleted"
        return f"[green]✓ {event.operation} finished:[/] {verb} {summary['count']} backups"
    if "verification" in summary:
        found = f"{summary.get('backup_id')} " + " · ".join(verify_facts(summary))
        return f"[green]✓ {event.operation} finished:[/] {escape(found)}"
    return f"[green]✓ {event.operation} finished[/]"


class EventRenderer:
    """Turns one operation's events into bar updates and printed lines."""

    def __init__(self, bar: Progress, task: TaskID, rto_seconds: float | None = None) -> None:
        self.bar = bar
        self.task = task
        self.rto_seconds = rto_seconds

    def __call__(self, event: Event) -> None:
        """Render one event."""
        kind = event.type
        if kind == EventType.ACCEPTED:
            self.bar.update(self.task, description=event.note or "queued")
        elif kind == EventType.STARTED:
            self.bar.update(self.task, description="started")
            if event.note:
                self.bar.console.print(f"  · {event.note}")
        elif kind == EventType.PROGRESS:
            self.bar.update(
                self.task,
                description=event.phase or "working",
                completed=event.done_bytes or 0,
                total=event.total_bytes,
            )
        elif kind == EventType.NOTE:
            self.bar.console.print(f"  · {event.note}")
        elif event.terminal:
            self.bar.update(self.task, description=kind.value)
            self.bar.console.print(describe_end(event, self.rto_seconds))
            if kind == EventType.FAILED and event.hint:
                self.bar.console.print(f"    hint: {event.hint}", markup=False)


def follow_operation(
    client: Any, settings: Any, op_id: str, after: str, out: Console
) -> Event | None:
    """Render ``op_id``'s events after stream id ``after`` until it ends; return the end."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=out,
    ) as bar:
        task = bar.add_task(f"{op_id} queued", total=None)
        render = EventRenderer(bar, task, settings.objectives.rto.total_seconds())
        return _pump(client, settings, op_id, after, render, bar.console.print)


def _pump(
    client: Any,
    settings: Any,
    op_id: str,
    after: str,
    render: Callable[[Event], None],
    say: Callable[[str], None],
) -> Event | None:
    began = time.monotonic()
    next_poll = began + STATE_POLL_SECONDS
    started = warned = False
    while True:
        for entry_id, event in queues.read_events(client, settings, after, 200, block_ms=1000):
            after = entry_id
            if event.op_id != op_id:
                continue
            started = started or event.type == EventType.STARTED
            render(event)
            if event.terminal:
                return event
        if time.monotonic() >= next_poll:
            next_poll = time.monotonic() + STATE_POLL_SECONDS
            record = queues.operation(client, settings, op_id)
            if record is None:
                return None
            waited = time.monotonic() - began
            if (
                not (started or warned)
                and record.get("state") == "queued"
                and waited > QUEUED_WARNING
            ):
                warned = True
                queue = record.get("queue", "its queue")
                say(f"  · still queued; is a worker running? kosmos-backup worker -q {queue}")
            last = record.get("last_event")
            if last and last.get("type") in (EventType.FINISHED, EventType.FAILED):
                event = Event.model_validate(last)
                render(event)
                return event
