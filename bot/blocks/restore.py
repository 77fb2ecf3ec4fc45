"""The restore approval card and the audit listing as Block Kit (pure; Slack's limits kept).

A pending card carries a reason box and Approve/Deny buttons; once the request is decided,
expired or running, the same card is re-rendered without them and says what happened, and
when the restore ends it shows the verification results and the duration against the RTO.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)

from bot.blocks.message import MAX_HEADER, Message, fit, sections
from bot.mrkdwn import clip, escape
from bot.replies.restore import (
    USER_END,
    USER_START,
    AuditReply,
    CardFacts,
    CardReply,
    DecisionReply,
    card_facts,
    unmark,
)
from workers.core.approvals import ApprovalRequest

APPROVE_ACTION = "restore_approve"
DENY_ACTION = "restore_deny"
REASON_BLOCK = "restore_reason"
REASON_INPUT = "reason"
DECISION_BLOCK = "restore_decision"
MAX_FIELDS = 10
MAX_FIELD = 2000
_USER = re.compile(f"{USER_START}([^{USER_END}]*){USER_END}")


def mention(text: str) -> str:
    """Escaped text with marked user ids turned into mentions."""
    return _USER.sub(lambda m: f"<@{m.group(1)}>", escape(text))


def card(request: ApprovalRequest, now: datetime, rto_seconds: float) -> Message:
    """The request's card as it stands at ``now``."""
    facts = card_facts(request, now, rto_seconds)
    blocks: list[Block] = [_title(request, facts)]
    if request.break_glass:
        who = f"<@{escape(request.requester)}>"
        loud = f":rotating_light: <!here> *Break-glass restore* by {who}: it runs without a "
        blocks += sections([loud + "second approval and must be reviewed by an approver."])
    fields = [
        MarkdownTextObject(text=clip(f"*{label}*\n{mention(value)}", MAX_FIELD))
        for label, value in facts.facts
    ]
    for start in range(0, len(fields), MAX_FIELDS):
        blocks.append(SectionBlock(fields=fields[start : start + MAX_FIELDS]))
    blocks += sections(f":warning: *{escape(w)}*" for w in facts.warnings)
    blocks += sections(mention(line) for line in facts.status)
    if facts.results:
        blocks += sections([":bar_chart: *Result*", *(escape(line) for line in facts.results)])
    if facts.open_for_decision:
        blocks += _decision_blocks(request.id)
    blocks.append(
        ContextBlock(
            elements=[MarkdownTextObject(text=f"`{request.id}` · digest `{request.digest[:16]}`")]
        )
    )
    text = f"{facts.title}: " + (facts.status[0] if facts.status else request.state.value)
    return Message(clip(unmark(text)), [b.to_dict() for b in blocks])


def notice(line: str) -> Message:
    """A one-line (ephemeral) answer."""
    text = clip(line)
    return Message(text, [SectionBlock(text=MarkdownTextObject(text=mention(text))).to_dict()])


def reply_messages(reply: CardReply | DecisionReply | AuditReply) -> list[Message]:
    """What the person who typed a restore command sees (ephemeral)."""
    if isinstance(reply, AuditReply):
        return audit_messages(reply)
    return [notice(reply.notice)]


def audit_messages(reply: AuditReply) -> list[Message]:
    """The newest audit records, one line each."""
    lines = [escape(line) for line in reply.lines()]
    header = f"Audit log: newest {len(reply.records)} records"
    return fit(header, sections(lines), header)


def reason_of(body: dict[str, Any]) -> str:
    """The text typed in a card's reason box, from a button click's payload."""
    values = (body.get("state") or {}).get("values") or {}
    typed = (values.get(REASON_BLOCK) or {}).get(REASON_INPUT) or {}
    return str(typed.get("value") or "").strip()


def _title(request: ApprovalRequest, facts: CardFacts) -> Block:
    mark = ":rotating_light:" if request.break_glass else ":lock:"
    return HeaderBlock(text=PlainTextObject(text=clip(f"{mark} {facts.title}", MAX_HEADER)))


def _decision_blocks(request_id: str) -> list[Block]:
    reason = InputBlock(
        block_id=REASON_BLOCK,
        label=PlainTextObject(text="Reason (required to deny)"),
        element=PlainTextInputElement(action_id=REASON_INPUT, max_length=500),
        optional=True,
    )
    buttons = ActionsBlock(
        block_id=DECISION_BLOCK,
        elements=[
            ButtonElement(
                text="Approve", action_id=APPROVE_ACTION, value=request_id, style="primary"
            ),
            ButtonElement(text="Deny", action_id=DENY_ACTION, value=request_id, style="danger"),
        ],
    )
    return [reason, buttons]
