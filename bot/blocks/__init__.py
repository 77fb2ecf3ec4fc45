"""Block Kit builders (slack_sdk models): pure, and never past Slack's limits.

``message`` holds the primitives (a message, sections packed to 3,000 characters, messages
split at 50 blocks); each command group renders its replies in its own module, and
:func:`reply_messages` picks the one a reply needs.
"""

from __future__ import annotations

from bot.blocks.backup import accepted, backup_list, help_message, status_board
from bot.blocks.message import Message
from bot.blocks.restore import reply_messages as restore_messages
from bot.blocks.runbook import reply_messages as runbook_messages
from bot.replies import Reply
from bot.replies.backup import AcceptedReply, ListReply, StatusReply
from bot.replies.restore import AuditReply, CardReply, DecisionReply
from bot.replies.runbook import DrReply


def reply_messages(reply: Reply) -> list[Message]:
    """Render any handler reply."""
    if isinstance(reply, StatusReply):
        return status_board(reply)
    if isinstance(reply, ListReply):
        return backup_list(reply)
    if isinstance(reply, AcceptedReply):
        return [accepted(reply)]
    if isinstance(reply, DrReply):
        return runbook_messages(reply)
    if isinstance(reply, CardReply | DecisionReply | AuditReply):
        return restore_messages(reply)
    return [help_message(reply)]
