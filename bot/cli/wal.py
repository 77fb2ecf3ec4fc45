"""wal-push and wal-fetch: PostgreSQL's archive_command and restore_command.

    archive_command = '/opt/kosmos-backup/bin/kosmos-backup --config /etc/kb.yaml wal-push %p'
    restore_command = '/opt/kosmos-backup/bin/kosmos-backup --config /etc/kb.yaml wal-fetch %f %p'

Exit status 0 means the file is stored (push) or delivered (fetch); anything else tells
PostgreSQL to keep the segment and retry (push) or that the file is not there (fetch).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from bot.cli.options import context_from

component_option = click.option(
    "--component",
    metavar="NAME",
    help="The postgres component (needed only when several archive WAL).",
)


@click.command(name="wal-push")
@click.argument("wal_path", type=click.Path(exists=True, dir_okay=False))
@component_option
@click.option(
    "--async",
    "in_background",
    is_flag=True,
    help="Wait for the background archiver (wal-archiver, started on demand) to store it.",
)
@click.pass_context
def wal_push(ctx: click.Context, wal_path: str, component: str | None, in_background: bool) -> None:
    """Archive one WAL file (archive_command: wal-push %p, or wal-push --async %p)."""
    if in_background:
        # The console script answers this before importing the CLI (bot.launch); this is
        # the same answer when the CLI is entered another way.
        ctx.exit(_shipping().confirm_async(wal_path, sys.argv[1:]))
    _shipping().wal_push(context_from(ctx).settings, wal_path, component)


@click.command(name="wal-archiver")
@click.option(
    "--pg-wal",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="The cluster's pg_wal directory.",
)
@component_option
@click.pass_context
def wal_archiver(ctx: click.Context, pg_wal: str, component: str | None) -> None:
    """Push ready WAL segments in the background (started by wal-push --async)."""
    _shipping().run_archiver(context_from(ctx).settings, Path(pg_wal), component)


@click.command(name="wal-fetch")
@click.argument("wal_name")
@click.argument("dest_path", type=click.Path(dir_okay=False))
@component_option
@click.pass_context
def wal_fetch(ctx: click.Context, wal_name: str, dest_path: str, component: str | None) -> None:
    """Restore one archived WAL file (restore_command: wal-fetch %f %p)."""
    _shipping().wal_fetch(context_from(ctx).settings, wal_name, dest_path, component)


@click.command(name="wal-prefetch")
@click.option("--component", required=True, metavar="NAME")
@click.option("--spool", required=True, type=click.Path(exists=True, file_okay=False))
@click.pass_context
def wal_prefetch(ctx: click.Context, component: str, spool: str) -> None:
    """Keep a restore's WAL spool ahead of replay (started and stopped by the restore)."""
    _shipping().run_prefetcher(context_from(ctx).settings, component, Path(spool))


def _shipping() -> Any:
    # Imported on use: archive_command runs once per segment, so it loads only what it uses.
    from workers.components import wal_shipping

    return wal_shipping()


commands = [wal_push, wal_fetch, wal_archiver, wal_prefetch]
