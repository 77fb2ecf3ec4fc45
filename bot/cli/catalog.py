"""Catalog commands: status, list, show, catalog rebuild, config check.

rich is imported where a table or panel is drawn: scripts and cron poll ``--json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from bot.cli.options import context_from, json_option
from workers import components as engine
from workers.context import Context
from workers.core.durations import format_duration
from workers.core.errors import UsageError
from workers.core.views import status_document

if TYPE_CHECKING:
    from rich.console import Console


@click.command()
@click.argument("component", required=False)
@json_option
@click.option(
    "--check", is_flag=True, help="Exit 1 when any component breaches its RPO (cron, monitoring)."
)
@click.pass_context
def status(ctx: click.Context, component: str | None, as_json: bool, check: bool) -> None:
    """Freshness of every component's last good backup against the RPO."""
    answer = status_answer(context_from(ctx), component, as_json=as_json, check=check)
    click.echo(answer.stdout, nl=False)
    if answer.stderr:
        click.echo(answer.stderr, nl=False, err=True)
    if answer.code:
        ctx.exit(answer.code)


@dataclass(frozen=True)
class StatusAnswer:
    """What ``status`` prints on stdout and stderr, and its exit code."""

    stdout: str
    stderr: str
    code: int


def status_answer(
    work: Context,
    component: str | None,
    *,
    as_json: bool,
    check: bool,
    screen: Console | None = None,
) -> StatusAnswer:
    """``status`` computed now: the CLI prints it, and `up`'s status socket sends it.

    The board is drawn on ``screen`` (default: this terminal) and is not in ``stdout``.
    """
    from workers.runbooks import drills

    rows = engine.status(work, component)
    drill = drills.last_drill(work)
    stdout = ""
    if as_json:
        document = status_document(work.settings, rows)
        stdout = json.dumps({**document, "last_drill": drill}, indent=2) + "\n"
    else:
        from bot.console.terminal import print_status

        print_status(work.settings, rows, work.clock(), drill, screen)
    breached = [row.name for row in rows if row.rpo_breached]
    if check and breached:
        return StatusAnswer(stdout, f"RPO breached: {', '.join(breached)}\n", 1)
    return StatusAnswer(stdout, "", 0)


@click.command(name="list")
@click.argument("component")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@json_option
@click.pass_context
def list_(ctx: click.Context, component: str, limit: int, as_json: bool) -> None:
    """Committed backups of one component, newest first."""
    work = context_from(ctx)
    backups = engine.list_backups(work, component)[:limit]
    if as_json:
        click.echo(json.dumps({"backups": [b.model_dump(mode="json") for b in backups]}, indent=2))
    else:
        from bot.console.terminal import backups_table, console

        console().print(backups_table(component, backups, work.clock()))


@click.command()
@click.argument("component", metavar="COMPONENT|BACKUP_ID")
@click.argument("ref", required=False)
@json_option
@click.pass_context
def show(ctx: click.Context, component: str, ref: str | None, as_json: bool) -> None:
    """One backup's manifest: objects, sizes, checksums, source and verification.

    ``show COMPONENT [REF]`` finds REF (an id, a prefix, or latest, the default) as verify
    does; ``show BACKUP_ID`` shows that backup.
    """
    work = context_from(ctx)
    if ref is None and component not in work.settings.components:
        if component == "latest":
            names = ", ".join(work.settings.components)
            raise UsageError(
                "show latest needs a component",
                hint=f"kosmos-backup show COMPONENT latest (components: {names})",
            )
        manifest = engine.show(work, component)
    else:
        manifest = engine.resolve(work, component, ref or "latest")
    if as_json:
        click.echo(json.dumps(manifest.model_dump(mode="json"), indent=2))
    else:
        from bot.console.terminal import console, manifest_panel

        screen = console()
        screen.print(manifest_panel(manifest, full=not screen.is_terminal))


@click.group()
def catalog() -> None:
    """Maintain the catalog index."""


@catalog.command()
@click.pass_context
def rebuild(ctx: click.Context) -> None:
    """Rebuild every component's index from the manifests in storage."""
    counts = engine.rebuild_catalog(context_from(ctx))
    for name, count in counts.items():
        click.echo(f"{name}: {count} backup{'s' * (count != 1)}")


@click.group()
def config() -> None:
    """Inspect the configuration."""


@config.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate the configuration, print a short summary and what cannot work (exit 2)."""
    work = context_from(ctx)
    settings = work.settings
    problems = engine.config_problems(work)
    verdict = (
        f"config has {len(problems)} problem{'s' * (len(problems) > 1)}"
        if problems
        else "config ok"
    )
    click.echo(
        f"{verdict}: storage {settings.storage.scheme}://, {len(settings.components)} components"
    )
    for name, comp in settings.components.items():
        built = (
            ""
            if engine.has_engine(comp.kind)
            else " — not built yet (on the board, never scheduled)"
        )
        click.echo(
            f"  {name}: {comp.kind}, every {format_duration(comp.frequency)}, "
            f"keep {format_duration(comp.retention)}, "
            f"queue {comp.queue}{built}"
        )
    for problem, hint in problems:
        click.echo(f"problem: {problem}")
        click.echo(f"  hint: {hint}")
    if problems:
        ctx.exit(2)


commands = [status, list_, show, catalog, config]
