"""wal-push and wal-fetch: PostgreSQL's archive_command and restore_command.

    archive_command = '/opt/kosmos-backup/bin/kosmos-backup --config /etc/kb.yaml wal-push %p'
    restore_command = '/opt/kosmos-backup/bin/kosmos-backup --config /etc/kb.yaml wal-fetch %f %p'

Exit status 0 means the file is stored (push) or delivered (fetch); anything else tells
PostgreSQL to keep the segment and retry (push) or that the file is not there (fetch).
"""

from __future__ import annotations

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
@click.pass_context
def wal_push(ctx: click.Context, wal_path: str, component: str | None) -> None:
    """Archive one WAL file (archive_command: wal-push %p)."""
    # Imported here: archive_command runs once per segment, so it loads only what it uses.
    from workers.engines.postgres import wal_shipping

    wal_shipping.wal_push(context_from(ctx).settings, wal_path, component)


@click.command(name="wal-fetch")
@click.argument("wal_name")
@click.argument("dest_path", type=click.Path(dir_okay=False))
@component_option
@click.pass_context
def wal_fetch(ctx: click.Context, wal_name: str, dest_path: str, component: str | None) -> None:
    """Restore one archived WAL file (restore_command: wal-fetch %f %p)."""
    from workers.engines.postgres import wal_shipping

    wal_shipping.wal_fetch(context_from(ctx).settings, wal_name, dest_path, component)


wal_commands = [wal_push, wal_fetch]
