"""``kosmos-backup up``: the main job on one machine: the console, a worker and the scheduler.

Redis is the configured one (which must answer: never a silent fallback), else the machine's
at the default address, else an embedded server in the state directory that every `up` of
this install shares. The worker and scheduler get the resolved URL, so all three agree.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from bot.cli.bot import run_console
from bot.cli.options import context_from
from workers.config_loader import CONFIG_ENV, OVERRIDE_PREFIX
from workers.context import Context
from workers.core.config import QUEUE_DEFAULT, QUEUE_ETCD, QUEUE_POSTGRES, Settings

if TYPE_CHECKING:
    from bot.cli.status_server import StatusServer

UP_QUEUES = ",".join((QUEUE_DEFAULT, QUEUE_POSTGRES, QUEUE_ETCD))
REDIS_URL_ENV = f"{OVERRIDE_PREFIX}REDIS__URL"
GRACE_SECONDS = 10.0
"""How long a child may finish its current step after /quit before it is stopped harder."""


@click.command()
@click.option("--as", "as_user", help="Start as this user from slack.roles.")
@click.option(
    "--log-dir",
    type=click.Path(file_okay=False),
    help="Where the worker and scheduler log (default: the state directory).",
)
@click.pass_context
def up(ctx: click.Context, as_user: str | None, log_dir: str | None) -> None:
    """Everything on one machine: the console, plus a worker and the scheduler in the background."""
    from workers.state.embedded_redis import coordinator_for_up
    from workers.worker import configure_logging

    work = context_from(ctx)
    configure_logging("WARNING")
    # A closed terminal or a `kill` ends `up` like /quit: its children and its server go too.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _interrupt)
    coordinator = coordinator_for_up(work.settings)
    try:
        click.echo(coordinator.description)  # the console's first line: where Redis is
        loaded = work.settings
        redis = loaded.redis.model_copy(update={"url": coordinator.url})
        work = Context(loaded.model_copy(update={"redis": redis}), clock=work.clock)
        ctx.find_root().obj["context"] = work
        status = _serve_status(loaded, work)
        try:
            _run(ctx, work, as_user, log_dir, coordinator.url)
        finally:
            if status is not None:
                status.close()
    finally:
        if coordinator.embedded is not None:
            stopped = coordinator.embedded.leave()
            click.echo(
                "embedded Redis stopped"
                if stopped
                else "embedded Redis left running for the other `up` using it",
                err=True,
            )


def _run(
    ctx: click.Context, work: Context, as_user: str | None, log_dir: str | None, url: str
) -> None:
    from workers.local_state import state_dir
    from workers.process import spawn

    logs = Path(log_dir) if log_dir else state_dir()
    logs.mkdir(parents=True, exist_ok=True)
    env = _child_env(ctx, url)
    base = [sys.executable, "-m", "bot.cli"]
    children: list[Any] = []
    handles: list[IO[bytes]] = []
    try:
        for name, argv in (
            ("worker", [*base, "worker", "--queues", UP_QUEUES]),
            ("scheduler", [*base, "scheduler"]),
        ):
            handle = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - closed below
            handles.append(handle)
            children.append(spawn(argv, env=env, log=handle))
        click.echo(f"worker and scheduler running (logs in {logs})", err=True)
        run_console(work, as_user)
    finally:
        stop_children(children)
        for log in handles:
            log.close()


def _serve_status(loaded: Settings, work: Context) -> StatusServer | None:
    """`status` answered from this process (bot.status_socket); without it, the CLI answers."""
    from bot.cli.status_server import serve_status

    try:
        return serve_status(loaded, work, os.environ)
    except FileExistsError:
        click.echo("`status` is answered by the other `up` of this state directory", err=True)
        return None
    except OSError as exc:
        click.echo(f"status socket not started ({exc}): `status` runs the full CLI", err=True)
        return None


def _interrupt(number: int, frame: Any) -> None:
    raise KeyboardInterrupt  # the console ends on it; the finally blocks clean up


def stop_children(children: list[Any]) -> None:
    """Stop the worker and scheduler; leave nothing behind.

    The first SIGTERM lets RQ finish its current job (a warm shutdown); after the grace time a
    second one makes it kill its work horse, which runs in a session of its own and would
    otherwise outlive everything (the abandoned-work sweep cleans up what it left).
    """
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for child in children:
        _wait(child, deadline)
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for child in children:
        if not _wait(child, deadline):
            child.kill()
            child.wait()


def _wait(child: Any, deadline: float) -> bool:
    try:
        child.wait(timeout=max(0.0, deadline - time.monotonic()))
    except Exception:  # noqa: BLE001 - still running: the caller decides what next
        return False
    return True


def _child_env(ctx: click.Context, url: str) -> dict[str, str]:
    from workers.local_state import STATE_ENV, state_dir

    root = ctx.find_root()
    path = root.obj.get("config_path") if isinstance(root.obj, dict) else None
    # The children use the Redis this `up` chose, and the same state directory (its key).
    env = {"PYTHONUNBUFFERED": "1", REDIS_URL_ENV: url, STATE_ENV: str(state_dir())}
    if path:
        env[CONFIG_ENV] = os.path.abspath(path)
    return env


commands = [up]
