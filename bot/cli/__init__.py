"""``kosmos-backup``: the command line front door (scripts, and when Slack is down)."""

from __future__ import annotations

import sys
import traceback
from datetime import UTC, datetime
from importlib import import_module
from typing import Any, NoReturn

import click

from workers.core.errors import KosmosError
from workers.core.ids import new_operation_id

COMMANDS: dict[str, str] = {
    "status": "bot.cli.catalog",
    "list": "bot.cli.catalog",
    "show": "bot.cli.catalog",
    "catalog": "bot.cli.catalog",
    "config": "bot.cli.catalog",
    "backup": "bot.cli.backups",
    "verify": "bot.cli.backups",
    "restore": "bot.cli.backups",
    "prune": "bot.cli.backups",
    "worker": "bot.cli.jobs",
    "scheduler": "bot.cli.jobs",
    "ops": "bot.cli.jobs",
    "bot": "bot.cli.bot",
    "up": "bot.cli.up",
    "wal-push": "bot.cli.wal",
    "wal-fetch": "bot.cli.wal",
    "wal-archiver": "bot.cli.wal",
    "wal-prefetch": "bot.cli.wal",
    "runbook": "bot.cli.runbook",
    "dr": "bot.cli.runbook",
    "restore-request": "bot.cli.approvals",
    "approve": "bot.cli.approvals",
    "deny": "bot.cli.approvals",
    "review": "bot.cli.approvals",
    "identity-token": "bot.cli.approvals",
    "audit": "bot.cli.approvals",
}
"""Every command and the module whose ``commands`` list holds it, imported when it runs.

archive_command starts ``wal-push`` once per WAL segment, and scripts poll ``status``: each
loads its own module, not the whole CLI (Redis, RQ, rich's renderers: most of a second).
While `up` runs, ``status`` does not get here at all: `up` answers it (bot.status_socket).
"""


class LazyGroup(click.Group):
    """The top-level group: a command's module is imported only when that command is used.

    ``--help`` lists every command with its one-line help, so it imports them all.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        found = {command.name: command for command in import_module(module).commands}
        return found[cmd_name]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    from workers.context import Context, redis_unavailable  # pydantic: not for --version

    hint = "start Redis, or point redis.url (KOSMOS__REDIS__URL) at it"
    command = obj.get("command")
    if isinstance(command, click.Command) and any(p.name == "local" for p in command.params):
        hint += "; or run it in this process without Redis: add --local"
    context = obj.get("context")
    return redis_unavailable(context.redis_url if isinstance(context, Context) else None, exc, hint)
