"""Rich renderings for the terminal: status board, backup lists, manifests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import IO, Any

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from bot.formats import size, verified, when
from bot.replies.runbook import drill_line
from workers.core.catalog import ComponentStatus, Freshness
from workers.core.config import Settings
from workers.core.durations import format_duration, humanize
from workers.core.manifest import BackupSummary, Manifest

MARKS = {
    Freshness.FRESH: "[green]● fresh[/]",
    Freshness.AGING: "[yellow]● aging[/]",
    Freshness.BREACHED: "[red]● RPO breached[/]",
    Freshness.NEVER: "[red]○ never backed up[/]",
    Freshness.DISABLED: "[dim]– disabled[/]",
    Freshness.NOT_BUILT: "[dim]◌ not built yet[/]",
}
UNREACHABLE = "[red]✕ unreachable[/]"


PIPE_WIDTH = 10_000
"""Columns of a console whose output goes to a pipe or file: wide enough never to wrap or cut."""


def console() -> Console:
    """A console on stdout: plain when not a terminal, and then never wrapped or cut.

    Piped output is read by scripts (``list postgres | cut …``): an id cut to ``postgres-2026…``
    or a row folded onto two lines breaks them, so tables take their natural width there.
    """
    screen = Console(highlight=False)
    if screen.is_terminal:
        return screen
    return Console(highlight=False, width=PIPE_WIDTH)


def console_for(file: IO[str], environ: Mapping[str, str], size: tuple[int, int] | None) -> Console:
    """The console ``console()`` would make in another process: its environment, whether its
    stdout is a terminal (``file.isatty()``) and its terminal's size; the text goes to ``file``.

    `up`'s status socket draws the board for the console script this way, so that what it
    prints is what the CLI would have printed there. The size follows rich's own rules.
    """
    probe = Console(highlight=False, file=file, _environ=environ)
    columns, lines = (_digits(environ.get(name)) for name in ("COLUMNS", "LINES"))
    if columns and lines:
        width, height = columns, lines
    elif probe.is_dumb_terminal:
        width, height = 80, 25
    else:
        found = size or (0, 0)
        width, height = columns or found[0] or 80, lines or found[1] or 25
    screen = Console(highlight=False, file=file, width=width, height=height, _environ=environ)
    if screen.is_terminal:
        return screen
    return Console(highlight=False, file=file, width=PIPE_WIDTH, height=height, _environ=environ)


def _digits(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def status_table(settings: Settings, rows: list[ComponentStatus], now: datetime) -> Table:
    """The status board: one line per component."""
    objectives = settings.objectives
    table = Table(
        title=(
            f"Backups  (RPO {format_duration(objectives.rpo)}, "
            f"RTO {format_duration(objectives.rto)})"
        ),
        title_justify="left",
    )
    for column in ("component", "state", "last good", "size", "next due", "retained", "verified"):
        table.add_column(column)
    for row in rows:
        last = row.last_backup
        due = _due(row, now)
        state = MARKS[row.freshness]
        if row.freshness == Freshness.BREACHED:
            state += f" [red](by {humanize(row.breached_by_seconds)})[/]"
        if row.unreachable:
            state += f"\n{UNREACHABLE}"
        checked = verified(row.last_verification, now) if row.last_verification else "–"
        table.add_row(
            f"{row.name} [dim]({row.kind})[/]",
            state,
            when(row.recovery_point, now) if last else ("never" if row.built else "–"),
            size(last.size) if last else "–",
            due,
            str(row.retained),
            checked,
        )
    return table


def status_notes(rows: list[ComponentStatus]) -> list[str]:
    """Lines under the board: why a component cannot be reached and how to point it elsewhere."""
    lines = []
    for row in rows:
        if row.unreachable:
            reason, *hints = row.unreachable.split("; ")
            lines.append(f"  [red]{escape(row.name)} {escape(reason)}[/]")
            lines += [f"    {escape(hint)}" for hint in hints]
    return lines


def print_status(
    settings: Settings,
    rows: list[ComponentStatus],
    now: datetime,
    drill: dict[str, Any] | None,
    screen: Console | None = None,
) -> None:
    """``kosmos-backup status``: the board, the lines under it, and the last drill."""
    screen = screen or console()
    screen.print(status_table(settings, rows, now))
    for note in status_notes(rows):
        screen.print(note)
    if drill:
        screen.print(f"  {escape(drill_line(drill))}")


def _due(row: ComponentStatus, now: datetime) -> str:
    if row.next_due is None:
        return "–"  # nothing schedules it (its engine is not built yet)
    if row.enabled and row.next_due <= now and row.last_backup:
        return "overdue"
    return when(row.next_due, now)


def backups_table(component: str, backups: list[BackupSummary], now: datetime) -> Table:
    """Committed backups of one component."""
    table = Table(title=f"{component}: {len(backups)} backups", title_justify="left")
    for column in ("id", "kind", "finished", "size", "objects", "verified"):
        table.add_column(column)
    for item in backups:
        table.add_row(
            item.id,
            escape(item.kind),
            when(item.finished_at, now),
            size(item.size),
            str(item.objects),
            verified(item.verification),
        )
    return table


def manifest_panel(manifest: Manifest, *, full: bool = False) -> Panel:
    """One backup in full; ``full`` prints whole checksums (for output that is not read by eye)."""
    objects = Table(box=None)
    for column in ("object", "stored", "raw", "sha256"):
        objects.add_column(column)
    for entry in manifest.objects:
        digest = entry.sha256 if full else entry.sha256[:16] + "…"
        objects.add_row(entry.name, size(entry.size), size(entry.raw_size), digest)
    lines = [
        f"[bold]{manifest.id}[/]  {escape(manifest.kind)}",
        f"started {manifest.started_at:%Y-%m-%d %H:%M:%S}Z, "
        f"took {humanize(manifest.duration_seconds)}",
        f"total {size(manifest.total_size)}, compression {manifest.compression or 'none'}, "
        f"encrypted to {len(manifest.encryption_recipients)} recipient(s)",
        # Engine-supplied text goes through escape(): "[error] …" or "[/x]" in it would
        # otherwise be read as rich markup (swallowed, or a MarkupError crash).
        f"source: {escape(str(manifest.source))}",
        f"tools: {escape(str(manifest.tool_versions))}",
    ]
    for label, record in (
        ("verification", manifest.verification),
        ("deep verification", manifest.deep_verification),
    ):
        if record is not None:
            lines.append(
                f"{label}: {record.state.value} at {record.at:%Y-%m-%d %H:%M}Z "
                f"{escape(record.detail)}"
            )
        else:
            lines.append(f"{label}: never")
    # Not expanded: on a wide (piped) console the frame would otherwise be padded to its width.
    group = Group("\n".join(lines), objects)
    return Panel(group, title="backup", title_align="left", expand=False)
