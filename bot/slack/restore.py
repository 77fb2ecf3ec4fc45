"""``/restore`` in Slack: the listener posts the approval card, its buttons decide on it.

Every rule is in :mod:`bot.handlers.restore` and the core; here a command or a button press
only becomes a call of the shared handlers, and their answer a card or an ephemeral reply.
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_sdk.errors import SlackApiError

from bot.blocks import reply_messages as render
from bot.blocks.message import Message
from bot.blocks.operation import error_message
from bot.blocks.restore import APPROVE_ACTION, DENY_ACTION, reason_of, reply_messages
from bot.handlers import dispatch
from bot.handlers.desk import Caller, Desk
from bot.handlers.restore import decide
from bot.relays.restore_cards import post_card, show_card
from bot.replies.restore import CardReply, DecisionReply
from bot.slack.answer import Answers
from workers.core.approvals import Verdict
from workers.core.errors import KosmosError
from workers.core.events import ChatContext


def register(app: Any, desk: Desk, client: Any, answers: Answers) -> None:
    """Add the ``/restore`` command and the card's buttons to a Bolt app.

    Call it before any catch-all command listener: Bolt runs the first that matches.
    """

    def on_restore(ack: Any, command: dict[str, Any], respond: Any) -> None:
        caller = _caller(command)

        def work() -> list[Message]:
            reply = dispatch(desk, caller, "/restore", command.get("text") or "")
            if isinstance(reply, CardReply) and not reply.repeated:
                reply = post_card(desk.ctx, client, caller.chat.channel, reply)
            elif isinstance(reply, DecisionReply):
                show_card(desk.ctx, client, reply.request)
            return render(reply)[:1]

        answers.answer(ack, respond, work)

    def on_button(ack: Any, body: dict[str, Any]) -> None:
        ack()
        action = (body.get("actions") or [{}])[0]
        user = str((body.get("user") or {}).get("id", ""))
        channel = str((body.get("channel") or {}).get("id", ""))
        verdict = Verdict.APPROVE if action.get("action_id") == APPROVE_ACTION else Verdict.DENY
        try:
            reply = decide(
                desk, user, str(action.get("value", "")), verdict, reason_of(body), via="slack"
            )
        except KosmosError as exc:
            _ephemeral(client, channel, user, error_message(exc).payload())
            return
        show_card(desk.ctx, client, reply.request)
        _ephemeral(client, channel, user, reply_messages(reply)[0].payload())

    app.command("/restore")(on_restore)
    app.action(APPROVE_ACTION)(on_button)
    app.action(DENY_ACTION)(on_button)


def _caller(command: dict[str, Any]) -> Caller:
    user = str(command.get("user_id", ""))
    chat = ChatContext(
        source="slack",
        channel=command.get("channel_id"),
        user=user,
        response_url=command.get("response_url"),
    )
    return Caller(user=user, chat=chat, request_key=command.get("trigger_id"))


def _ephemeral(client: Any, channel: str, user: str, payload: dict[str, Any]) -> None:
    try:
        client.chat_postEphemeral(channel=channel, user=user, **payload)
    except SlackApiError as exc:
        structlog.get_logger().warning("ephemeral refused", error=str(exc))
