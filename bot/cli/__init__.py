"""``kosmos-backup``: the command line front door (scripts, and when Slack is down)."""

from __future__ import annotations

import sys
import traceback
from datetime import UTC, datetime
from typing import Any, NoReturn

import click

from bot.cli.approvals import approval_commands
from bot.cli.backups import backup_commands
from bot.cli.bot import bot_commands
from bot.cli.catalog import catalog_commands
from bot.cli.jobs import job_commands
from bot.cli.runbook import runbook_commands
from bot.cli.up import up_commands
from bot.cli.wal import wal_commands
from workers.context import Context, redis_unavailable
from workers.core.errors import KosmosError
from workers.core.ids import new_operation_id


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kosmos-backup", prog_name="kosmos-backup")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="KOSMOS_BACKUP_CONFIG",
    help="YAML config file (default: $KOSMOS_BACKUP_CONFIG, else embedded defaults).",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Chat-ops backup and disaster recovery for the KOSMOS K3s platform."""
    ctx.ensure_object(dict)["config_path"] = config_path


for command in [
    *catalog_commands,
    *backup_commands,
    *job_commands,
    *bot_commands,
    *up_commands,
    *wal_commands,
    *runbook_commands,
]:
    cli.add_command(command)

for command in approval_commands:
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; KosmosError becomes a one-line message and its exit status."""
    obj: dict[str, Any] = {}
    try:
        # Without standalone mode click returns ctx.exit(N)'s code instead of exiting.
        code = cli.main(args=argv, standalone_mode=False, obj=obj)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KosmosError as exc:
        _fail(exc)
    except Exception as exc:
        outage = _redis_down(obj, exc)
        if outage is not None:
            _fail(outage)
        operation = new_operation_id(datetime.now(UTC))
        click.echo(f"internal error, operation {operation}", err=True)
        traceback.print_exc(file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(exc: KosmosError) -> NoReturn:
    click.echo(f"error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)
    sys.exit(exc.exit_code)


def _redis_down(obj: dict[str, Any], exc: Exception) -> KosmosError | None:
    """Redis unreachable, said in one line; commands that can run without it say ``--local``."""
    hint = "start Redis, or point redis.url (KOSMOS__REDIS__URL) at it"
    command = obj.get("command")
    if isinstance(command, click.Command) and any(p.name == "local" for p in command.params):
        hint += "; or run it in this process without Redis: add --local"
    context = obj.get("context")
    return redis_unavailable(context.redis_url if isinstance(context, Context) else None, exc, hint)
