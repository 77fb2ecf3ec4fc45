"""``kosmos-backup bot``: Slack over HTTP or Socket Mode, or the console."""

from __future__ import annotations

import click

from bot.cli.options import context_from
from workers.context import Context
from workers.core.config import Settings
from workers.core.errors import UsageError


def choose_mode(settings: Settings, http: bool, console_mode: bool) -> str:
    """``console``, ``http`` or ``socket``: as asked, else by which Slack tokens exist."""
    if http and console_mode:
        raise UsageError("--http and --console exclude each other")
    if console_mode:
        return "console"
    if http:
        return "http"
    slack = settings.slack
    if slack.app_token is not None and slack.bot_token is not None:
        return "socket"
    if slack.configured:
        return "http"
    return "console"


@click.command()
@click.option("--http", "http_mode", is_flag=True, help="Serve Slack's HTTP requests.")
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option(
    "--workers", type=click.IntRange(1, 32), default=2, show_default=True, help="HTTP processes."
)
@click.option(
    "--threads", type=click.IntRange(1, 256), default=16, show_default=True, help="Per process."
)
@click.option("--console", "console_mode", is_flag=True, help="The terminal chat (no Slack).")
@click.option("--as", "as_user", help="Console: start as this user from slack.roles.")
@click.option("--metrics-port", type=click.IntRange(1, 65535), help="Serve /metrics here.")
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_context
def bot(
    ctx: click.Context,
    http_mode: bool,
    port: int,
    host: str,
    workers: int,
    threads: int,
    console_mode: bool,
    as_user: str | None,
    metrics_port: int | None,
    log_level: str,
) -> None:
    """The chat front door: Slack (HTTP or Socket Mode) or, without Slack tokens, the console."""
    from workers.worker import configure_logging

    work = context_from(ctx)
    mode = choose_mode(work.settings, http_mode, console_mode)
    if mode == "console":
        configure_logging("WARNING")
        run_console(work, as_user)
        return
    configure_logging(log_level)
    if mode == "http":
        from bot.slack.server import ServeOptions, serve_http

        options = ServeOptions(
            port=port, host=host, workers=workers, threads=threads, metrics_port=metrics_port
        )
        serve_http(work.settings, options)
    else:
        from bot.slack.server import serve_socket_mode

        serve_socket_mode(work.settings, metrics_port)


def run_console(work: Context, as_user: str | None) -> None:
    """Run the console chat on this terminal."""
    from bot.console.chat import ConsoleChat
    from bot.console.terminal import console

    ConsoleChat(work, console(), as_user).run()


commands = [bot]
