"""``/dr``: runbook runs in the incident channel, and the step cards' buttons.

``answer`` is shared by every front door: start (in a channel, operators and incident
commanders only), status, abort, resume, and a step's answers typed (``/dr done <step>``,
the console's way to the buttons), and ``press``, what a step card's button does (its Slack
listener is :mod:`bot.slack.runbook`). Every rule lives in the run's state machine; a
button only names its run and step.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

import structlog

from bot.blocks.operation import error_message
from bot.blocks.runbook import (
    APPROVE_ACTION,
    CONFIRM_ACTIONS,
    DECIDE_ACTIONS,
)
from bot.grammar.command import Command
from bot.grammar.runbook import (
    HELP,
    DrAbort,
    DrAnswer,
    DrApprove,
    DrHelp,
    DrResume,
    DrStart,
    DrStatus,
)
from bot.handlers.desk import Caller, Desk
from bot.replies.backup import HelpReply
from bot.replies.runbook import DrReply
from workers.core.errors import KosmosError, UsageError

CONFIRM = "dr.confirm"
"""The action a step button needs (operators and incident commanders)."""
APPROVE = "restore.approve"
"""An approval step's button needs what approving a restore needs: the approvers role."""


def answer(desk: Desk, caller: Caller, command: Command) -> DrReply | HelpReply:
    """Answer one parsed, authorized ``/dr`` command."""
    from workers.runbooks import durability as dr
    from workers.runbooks import flow as runbook_flow

    ctx = desk.ctx
    if isinstance(command, DrHelp):
        return HelpReply("dr", [*HELP, *dr.runbook_usage(ctx)])
    if isinstance(command, DrStart):
        return _start(desk, caller, command)
    place = caller.chat.place
    if isinstance(command, DrStatus):
        run = runbook_flow.current(ctx, place, command.run_id)
        _follow(ctx, run.run_id)
        return DrReply("", runbook_flow.current(ctx, place, run.run_id), ctx.clock())
    if isinstance(command, DrAnswer | DrApprove):
        return _answer(desk, caller, command)
    if isinstance(command, DrAbort):
        run = runbook_flow.current(ctx, place, command.run_id)
        run = runbook_flow.abort(ctx, run.run_id, by=caller.user, reason=command.reason)
        return DrReply(f"aborted {run.run_id}: {command.reason}", run, ctx.clock())
    if isinstance(command, DrResume):
        run = runbook_flow.current(ctx, place, command.run_id)
        run, actions = dr.resume(ctx, run.run_id)
        done = ", ".join(f"{a.step}: {a.action}" for a in actions) or "nothing was lost"
        return DrReply(f"resumed {run.run_id} ({done})", run, ctx.clock())
    raise UsageError("unknown /dr command", hint="/dr help")


def _answer(desk: Desk, caller: Caller, command: DrAnswer | DrApprove) -> DrReply:
    """A step card's button, typed: the same rules, the same state machine."""
    from workers.runbooks import flow as runbook_flow

    ctx = desk.ctx
    run_id = runbook_flow.current(ctx, caller.chat.place, command.run_id).run_id
    if isinstance(command, DrApprove):
        run = runbook_flow.approve_gate(ctx, run_id, command.step_id, by=caller.user)
        said = "approve"
    else:
        run = runbook_flow.answer(
            ctx, run_id, command.step_id, command.answer, by=caller.user, note=command.note
        )
        said = command.answer
    return DrReply(f"{command.step_id}: {said} ({caller.user})", run, ctx.clock())


def _start(desk: Desk, caller: Caller, command: DrStart) -> DrReply:
    from workers.runbooks import flow as runbook_flow

    ctx = desk.ctx
    channel = caller.chat.channel
    if caller.chat.source == "slack" and (not channel or channel.startswith("D")):
        raise UsageError(
            "/dr start must be run in a channel",
            hint="the board and its thread are the incident's record: use the incident channel",
        )
    if caller.request_key and desk.claim(caller.request_key, "dr-start"):
        return DrReply("this start was already received", None, ctx.clock())
    try:
        runbook = runbook_flow.check_start(ctx, command.runbook, command.params)
    except BaseException:
        if caller.request_key:
            desk.forget(caller.request_key)
        raise
    if caller.chat.source == "slack":
        # Storage, Redis and the first jobs may take longer than Slack's 3 s in a disaster:
        # the answer goes now, the board follows, and a late refusal comes ephemerally.
        threading.Thread(
            target=_start_later, args=(ctx, command, caller), name="kb-dr-start", daemon=True
        ).start()
        return DrReply(
            f"starting {runbook.title}: its board is posted in this channel", None, ctx.clock()
        )
    run = runbook_flow.start(
        ctx, command.runbook, command.params, started_by=caller.user, chat=caller.chat
    )
    return DrReply(f"started {run.runbook.title} as {run.run_id}", run, ctx.clock())


def _start_later(ctx: Any, command: DrStart, caller: Caller) -> None:
    from workers.runbooks import flow as runbook_flow

    try:
        runbook_flow.start(
            ctx, command.runbook, command.params, started_by=caller.user, chat=caller.chat
        )
    except KosmosError as exc:
        _respond(caller.chat.response_url, error_message(exc).payload())
    except Exception:  # noqa: BLE001 - the outer edge of this thread: log it, say so
        structlog.get_logger().exception("dr start failed", runbook=command.runbook)
        _respond(caller.chat.response_url, {"text": "internal error while starting the run"})


def _respond(url: str | None, payload: dict[str, Any]) -> None:
    """Tell the person through Slack's response_url (ephemeral), when there is one."""
    if not url:
        return
    body = json.dumps({"response_type": "ephemeral", **payload}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except OSError as exc:
        structlog.get_logger().warning("response_url post failed", error=str(exc))


def _follow(ctx: Any, run_id: str) -> None:
    from workers.runbooks.flow import follow_gates

    try:
        follow_gates(ctx, run_id)
    except KosmosError as exc:
        structlog.get_logger().warning("approval gates not followed", error=exc.message)


def press(desk: Desk, user: str, action_id: str, value: str, note: str | None) -> Any:
    """Carry out one step button for ``user``: authorize, then confirm or decide."""
    from workers.runbooks import flow as runbook_flow

    desk.authorizer.check(user, APPROVE if action_id == APPROVE_ACTION else CONFIRM)
    try:
        target = json.loads(value)
        run_id, step_id = str(target["run"]), str(target["step"])
    except (ValueError, KeyError, TypeError):
        raise UsageError("this button does not name a runbook step") from None
    if action_id in CONFIRM_ACTIONS:
        return runbook_flow.confirm(
            desk.ctx, run_id, step_id, CONFIRM_ACTIONS[action_id], by=user, note=note
        )
    if action_id == APPROVE_ACTION:
        return runbook_flow.approve_gate(desk.ctx, run_id, step_id, by=user)
    if action_id in DECIDE_ACTIONS:
        return runbook_flow.decide(
            desk.ctx, run_id, step_id, DECIDE_ACTIONS[action_id], by=user, note=note
        )
    raise UsageError(f"unknown step button {action_id!r}")
