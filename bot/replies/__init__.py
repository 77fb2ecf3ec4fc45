"""What handlers answer, before rendering: Slack renders these as blocks, the console with rich.

One module per command group (``backup``, ``restore``, ``runbook`` for ``/dr``), and the
lines an operation's message shows as its events arrive (``progress``, ``results``).
"""

from __future__ import annotations

from bot.replies.backup import AcceptedReply, HelpReply, ListReply, StatusReply
from bot.replies.restore import AuditReply, CardReply, DecisionReply
from bot.replies.runbook import DrReply

Reply = (
    StatusReply
    | ListReply
    | AcceptedReply
    | HelpReply
    | CardReply
    | DecisionReply
    | AuditReply
    | DrReply
)
"""Any handler's answer."""
