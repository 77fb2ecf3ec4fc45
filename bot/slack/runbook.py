"""``/dr`` in Slack: the buttons on a step's card (``/dr`` itself goes through ``dispatch``).

A manual step's card has Done / Skip / Failed and a text field for the reason or note; a
step that asks for a decision has its own buttons. A press becomes :func:`press`.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog

from bot.blocks.operation import error_message
from bot.blocks.runbook import (
    APPROVE_ACTION,
    CONFIRM_ACTIONS,
    DECIDE_ACTIONS,
    NOTE_ACTION,
    NOTE_BLOCK,
)
from bot.handlers.desk import Desk
from bot.handlers.runbook import press
from workers.core.errors import KosmosError


def register(app: Any, desk: Desk, client: Any) -> None:
    """Add the step buttons to a Bolt app (``/dr`` itself goes through ``dispatch``)."""

    def on_button(ack: Any, body: dict[str, Any]) -> None:
        ack()
        action = (body.get("actions") or [{}])[0]
        user = str((body.get("user") or {}).get("id", ""))
        channel = str((body.get("channel") or {}).get("id", ""))
        try:
            press(desk, user, str(action.get("action_id")), str(action.get("value")), note_of(body))
        except KosmosError as exc:
            _ephemeral(client, channel, user, error_message(exc).payload())

    for action_id in (*CONFIRM_ACTIONS, *DECIDE_ACTIONS, APPROVE_ACTION):
        app.action(action_id)(on_button)
    threading.Thread(target=_warm_up, args=(desk.ctx,), name="kb-dr-warm-up", daemon=True).start()


def _warm_up(ctx: Any) -> None:
    """Load the DR machinery now, so the first /dr in an incident answers within Slack's 3 s."""
    try:
        from workers.runbooks import flow as runbook_flow

        runbook_flow.load(ctx, ctx.settings.dr.dr_test_runbook)
        ctx.repo.store.exists("_dr/warm-up")
    except Exception as exc:  # noqa: BLE001 - only a head start; the command reports real errors
        structlog.get_logger().info("dr warm-up incomplete", error=str(exc))


def note_of(body: dict[str, Any]) -> str | None:
    """The reason or note typed into the card's text field, if any."""
    values = ((body.get("state") or {}).get("values") or {}).get(NOTE_BLOCK) or {}
    text = (values.get(NOTE_ACTION) or {}).get("value")
    return str(text).strip() or None if text else None


def _ephemeral(client: Any, channel: str, user: str, payload: dict[str, Any]) -> None:
    try:
        client.chat_postEphemeral(channel=channel, user=user, **payload)
    except Exception as exc:  # noqa: BLE001 - the refusal is logged; the click changed nothing
        structlog.get_logger().warning("ephemeral answer failed", error=str(exc))
