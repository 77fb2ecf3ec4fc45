"""``kosmos-backup runbook check`` and ``kosmos-backup dr …``: runbooks without Slack.

``runbook check [FILE…]`` validates runbook files and names each problem's file, line and
step. ``dr start|status|resume|abort|confirm`` drive runs from a shell, for when Slack is
down; the run's state is the same one the bot shows, so both can be used on one run. A
person's action on a run (start, confirm, abort) needs the identity every CLI approval needs
(KOSMOS_USER + KOSMOS_USER_TOKEN), unless ``approvals.trust_local_console`` says this
machine's console is trusted: the starter of a run may not approve its gates, so who started
it must be as sure as who approves.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from bot.cli.options import context_from, json_option
from bot.console.terminal import console
from bot.replies.runbook import DrReply
from workers.context import Context
from workers.core.errors import ConfigError, KosmosError, PermissionDenied


@click.group()
def runbook() -> None:
    """Runbook files: validate them."""


@runbook.command("check")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@json_option
@click.pass_context
def check(click_ctx: click.Context, files: tuple[Path, ...], as_json: bool) -> None:
    """Validate runbooks (default: every shipped one); exit 2 when any has an error."""
    from workers.runbooks import durability as dr

    loaded, found = dr.check_runbooks(context_from(click_ctx), list(files))
    errors = [p for p in found if not p.warning]
    if as_json:
        click.echo(json.dumps(_check_json(loaded, found), indent=1))
    else:
        # Plain lines, one per problem: editors and CI annotators read file:line: …
        for problem in found:
            click.echo(str(problem), err=not problem.warning)
        for checked in loaded:
            modes = list(checked.modes.values())
            counts = ", ".join(f"{modes.count(m)} {m.value}" for m in dict.fromkeys(modes))
            click.echo(
                f"ok {checked.file}: {checked.runbook.name}, "
                f"{len(modes)} steps ({counts} in this build)"
            )
    if errors:
        # click's non-standalone main returns an Exit's code instead of exiting with it.
        raise ConfigError(
            f"{len(errors)} error(s) in runbook files", hint="fix them; the lines are above"
        )


def _check_json(loaded: list[Any], found: list[Any]) -> dict[str, Any]:
    return {
        "runbooks": [
            {
                "file": c.file,
                "name": c.runbook.name,
                "modes": {k: v.value for k, v in c.modes.items()},
            }
            for c in loaded
        ],
        "problems": [
            {
                "file": p.file,
                "line": p.line,
                "step": p.step,
                "message": p.message,
                "warning": p.warning,
            }
            for p in found
        ],
    }


@click.group()
def dr() -> None:
    """Runbook runs (DR): start, follow, resume, abort, confirm manual steps."""


def _person(ctx: Context, claimed: str | None, action: str) -> str:
    """Who acts on a run from this shell, checked like ``kosmos-backup approve`` checks it.

    KOSMOS_USER with its KOSMOS_USER_TOKEN (``bot.cli.approvals.identify``); ``--as`` may only
    repeat that name. Where ``approvals.trust_local_console`` says this machine's console is
    trusted, ``--as`` (else the login) counts without a token. Either way the person must
    hold a role that allows ``action``, as in Slack.
    """
    from bot.cli.approvals import USER_ENV, cli_roles, identify
    from bot.roles import ACTION_PERMISSIONS, ROLE_PERMISSIONS

    settings = ctx.settings
    if settings.approvals.trust_local_console:
        user = claimed or f"cli:{getpass.getuser()}"
    else:
        user = identify(settings, os.environ)
        if claimed and claimed not in (user, settings.approvals.cli_identities[user].name):
            raise PermissionDenied(
                f"--as {claimed} is not who {USER_ENV} authenticates ({user})",
                hint="drop --as: on the command line you act as your own identity",
            )
    needed = ACTION_PERMISSIONS[action]
    if not any(needed in ROLE_PERMISSIONS[role] for role in cli_roles(settings, user)):
        raise PermissionDenied(
            f"{user} may not use {action.replace('.', ' ')}: it needs the {needed.value} "
            "permission (operators or incident_commanders)",
            hint="see slack.roles and approvals.cli_identities",
        )
    return user


@dr.command("start")
@click.argument("runbook_name", metavar="RUNBOOK")
@click.option("--param", "params", multiple=True, help="name=value (repeatable).")
@click.option("--channel", help="Slack channel for the board (the bot posts it).")
@click.option("--as", "user", help="Who starts it (must be KOSMOS_USER unless trusted).")
@click.option("--local", is_flag=True, help="Run the steps in this process (no workers).")
@click.option("--wait", is_flag=True, help="Follow the run until it ends or waits for a person.")
@click.pass_context
def start(
    click_ctx: click.Context,
    runbook_name: str,
    params: tuple[str, ...],
    channel: str | None,
    user: str | None,
    local: bool,
    wait: bool,
) -> None:
    """Start a run of RUNBOOK as KOSMOS_USER (KOSMOS_USER_TOKEN); prints the run id."""
    from workers.core.events import ChatContext
    from workers.runbooks import durability as durable
    from workers.runbooks import flow as runbook_flow

    ctx = context_from(click_ctx)
    runner = durable.LocalRunner() if local else None
    who = _person(ctx, user, "dr.start")
    run = runbook_flow.start(
        ctx,
        runbook_name,
        runbook_flow.usage_params(list(params)),
        started_by=who,
        chat=ChatContext(source="cli", channel=channel, user=who),
        submit=runner,
    )
    click.echo(run.run_id)
    if runner is not None:
        run = runner.drain(ctx, run.run_id)
    if wait or local:
        _follow(ctx, run.run_id, wait)


@dr.command("status")
@click.argument("run_id", required=False)
@json_option
@click.pass_context
def status(click_ctx: click.Context, run_id: str | None, as_json: bool) -> None:
    """Show a run's checklist (default: the newest runs)."""
    from workers.runbooks import flow as runbook_flow

    ctx = context_from(click_ctx)
    if run_id is None:
        for run in runbook_flow.runs(ctx).recent(10):
            console().print(f"{run.run_id}  {run.runbook.name}  {run.status.value}")
        return
    run = runbook_flow.current(ctx, None, run_id)
    if as_json:
        click.echo(run.model_dump_json(indent=1))
        return
    _print(DrReply("", run, ctx.clock()))


@dr.command("resume")
@click.argument("run_id")
@click.option("--local", is_flag=True, help="Run the steps in this process (no workers).")
@click.pass_context
def resume(click_ctx: click.Context, run_id: str, local: bool) -> None:
    """Continue a run after a crash; restores it from storage when Redis lost it."""
    from workers.runbooks import durability as durable

    ctx = context_from(click_ctx)
    runner = durable.LocalRunner() if local else None
    run, actions = durable.resume(ctx, run_id, submit=runner)
    for action in actions:
        console().print(f"{escape(action.step)}: {action.action} ({escape(action.reason)})")
    if runner is not None:
        run = runner.drain(ctx, run_id)
    _print(DrReply(f"resumed {run_id}", run, ctx.clock()))


@dr.command("abort")
@click.argument("run_id")
@click.option("--reason", required=True, help="Why the run stops.")
@click.option("--as", "user", help="Who aborts it (must be KOSMOS_USER unless trusted).")
@click.pass_context
def abort(click_ctx: click.Context, run_id: str, reason: str, user: str | None) -> None:
    """Abort a run as KOSMOS_USER (KOSMOS_USER_TOKEN); teardown steps still run."""
    from workers.runbooks import flow as runbook_flow

    ctx = context_from(click_ctx)
    run = runbook_flow.abort(ctx, run_id, by=_person(ctx, user, "dr.abort"), reason=reason)
    _print(DrReply(f"aborted {run_id}", run, ctx.clock()))


@dr.command("confirm")
@click.argument("run_id")
@click.argument("step_id")
@click.argument("answer", type=click.Choice(["done", "skip", "failed", "retry", "fail"]))
@click.option("--note", help="Reason (skip) or note (failed).")
@click.option("--as", "user", help="Who answers (must be KOSMOS_USER unless trusted).")
@click.option("--local", is_flag=True, help="Run the next steps in this process.")
@click.pass_context
def confirm(
    click_ctx: click.Context,
    run_id: str,
    step_id: str,
    answer: str,
    note: str | None,
    user: str | None,
    local: bool,
) -> None:
    """Answer a step waiting for a person (manual: done/skip/failed; asked: retry/skip/fail).

    You act as KOSMOS_USER, proven by KOSMOS_USER_TOKEN, as for ``kosmos-backup approve``.
    """
    from workers.runbooks import durability as durable
    from workers.runbooks import flow as runbook_flow

    ctx = context_from(click_ctx)
    who = _person(ctx, user, "dr.confirm")
    runner = durable.LocalRunner() if local else None
    run = runbook_flow.answer(ctx, run_id, step_id, answer, by=who, note=note, submit=runner)
    if runner is not None:
        run = runner.drain(ctx, run_id)
    _print(DrReply(f"{step_id}: {answer}", run, ctx.clock()))


def _follow(ctx: Context, run_id: str, wait: bool) -> None:
    from workers.core.runbook_run import Awaiting
    from workers.runbooks import flow as runbook_flow

    while True:
        run = runbook_flow.current(ctx, None, run_id)
        waiting = [s for s in run.running() if run.steps[s].awaiting is not None]
        if (run.finished and run.report) or waiting or not wait:
            break
        time.sleep(1.0)
    _print(DrReply("", run, ctx.clock()))
    for step_id in waiting:
        what = run.steps[step_id].awaiting
        verb = "done|skip|failed" if what == Awaiting.CONFIRMATION else "retry|skip|fail"
        console().print(f"waiting for a person: kosmos-backup dr confirm {run_id} {step_id} {verb}")
    if run.report:
        from bot.replies.runbook_feed import report_lines

        for line in report_lines(run.report)[1:]:
            console().print(escape(line))
    if run.finished and run.status.value != "done":
        raise KosmosError(f"run {run_id} {run.status.value}: {run.failure or run.abort_reason}")


def _print(reply: DrReply) -> None:
    for line in reply.lines():
        if line:
            console().print(escape(line))


commands = [runbook, dr]
