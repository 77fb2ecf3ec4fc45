"""``/restore`` and ``/backup audit``: request, approve, deny, break glass, review, audit.

``answer`` is shared by every front door. Slack also gets ``register``: the ``/restore``
listener posts the approval card in the channel, and the Approve/Deny buttons decide on
the card they sit on. Every rule is enforced in ``workers.restore_requests`` and the core,
never by what a card shows; the approvers role is looked up afresh for each decision.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError

from bot.blocks import reply_messages as render
from bot.blocks.operation import error_message
from bot.blocks.restore import APPROVE_ACTION, DENY_ACTION, card, reason_of, reply_messages
from bot.grammar.backup import BackupAudit
from bot.grammar.command import Command
from bot.grammar.restore import (
    HELP,
    RestoreApprove,
    RestoreBreakGlass,
    RestoreDeny,
    RestoreHelp,
    RestoreRequest,
    RestoreReview,
)
from bot.handlers.desk import Caller, Desk
from bot.replies.backup import HelpReply
from bot.replies.restore import AuditReply, CardReply, DecisionReply
from bot.roles import Authorizer, SlackGroups
from workers.context import Context
from workers.core.approvals import ApprovalRequest, Verdict, new_request_id
from workers.core.audit import AuditAction
from workers.core.errors import KosmosError, PermissionDenied, StorageUnavailable, UsageError
from workers.core.events import ChatContext
from workers.restore_plans import resolve_plan, validate_plan
from workers.restore_requests import (
    attach_card,
    audit_of,
    break_glass,
    decide_request,
    open_restore_request,
    review_request,
    store_of,
)

APPROVERS = "approvers"
COMMANDERS = "incident_commanders"
CARDS_KEY = "bot:cards"
"""Hash under the Redis prefix: request id -> digest of the request its card last showed."""


def answer(
    desk: Desk, caller: Caller, command: Command
) -> CardReply | DecisionReply | AuditReply | HelpReply:
    """Answer one parsed, authorized ``/restore`` (or ``/backup audit``) command."""
    ctx = desk.ctx
    if isinstance(command, BackupAudit):
        return AuditReply(audit_of(ctx).tail(command.limit), ctx.clock())
    if isinstance(command, RestoreHelp):
        return HelpReply("restore", list(HELP))
    if isinstance(command, RestoreRequest):
        return _request(desk, caller, command)
    if isinstance(command, RestoreApprove | RestoreDeny):
        verdict = Verdict.APPROVE if isinstance(command, RestoreApprove) else Verdict.DENY
        reason = command.reason if isinstance(command, RestoreDeny) else ""
        return decide(
            desk, caller.user, command.request_id, verdict, reason, via=caller.chat.source
        )
    if isinstance(command, RestoreReview):
        reviewed = review_request(
            ctx,
            command.request_id,
            user=caller.user,
            holds_approver_role=APPROVERS in fresh_roles(desk, caller.user),
            notes=command.notes,
        )
        return _decision_reply(ctx, reviewed, f"Review of {reviewed.id} recorded.")
    raise UsageError(f"/restore cannot answer {type(command).__name__}")


def decide(
    desk: Desk, user: str, request_id: str, verdict: Verdict, reason: str, *, via: str
) -> DecisionReply:
    """One approve or deny, with the approvers role checked now (not from a cache)."""
    outcome = decide_request(
        desk.ctx,
        request_id,
        user=user,
        verdict=verdict,
        holds_approver_role=APPROVERS in fresh_roles(desk, user),
        reason=reason,
        via=via if via in ("slack", "console", "cli") else "slack",
    )
    request = outcome.request
    if outcome.error is not None:
        notice = f"{outcome.error.message}" + (
            f" ({outcome.error.hint})" if outcome.error.hint else ""
        )
    elif verdict == Verdict.DENY:
        notice = f"You denied {request.id}."
    elif outcome.enqueued:
        notice = f"You approved {request.id}; restore {outcome.enqueued} is queued."
    else:
        left = request.required - len(request.approvers)
        notice = f"You approved {request.id}; {left} more approver(s) needed."
    return _decision_reply(desk.ctx, request, notice, error=outcome.error)


def audit_role_refusal(ctx: Context, user: str, action: str, error: PermissionDenied) -> None:
    """Record in the audit log that a role check refused ``user`` (never masks the refusal)."""
    with contextlib.suppress(StorageUnavailable):
        audit_of(ctx).record(
            AuditAction.ROLE_REFUSAL, user, at=ctx.clock(), subject=action, message=error.message
        )


def fresh_roles(desk: Desk, user: str) -> frozenset[str]:
    """The roles ``user`` holds right now: user groups are asked again, not read from cache."""
    authorizer = desk.authorizer
    if isinstance(authorizer.groups, SlackGroups):
        authorizer = Authorizer(
            authorizer.roles, SlackGroups(authorizer.groups.client, ttl=0.0), authorizer.open_access
        )
    return authorizer.roles_of(user)


def _request(desk: Desk, caller: Caller, command: RestoreRequest) -> CardReply:
    ctx = desk.ctx
    request_id = new_request_id(ctx.clock())
    if caller.request_key:
        earlier = desk.claim(caller.request_key, request_id)
        if earlier is not None:
            request = store_of(ctx).get(earlier)
            return CardReply(
                request, ctx.clock(), _rto(ctx), f"Already requested as {earlier}.", True
            )

    def prepare() -> tuple[Any, Any]:
        plan = resolve_plan(
            ctx,
            command.component,
            command.ref,
            target=command.target,
            database=command.database,
            point=command.point,
            in_place=command.in_place,
        )
        return plan, validate_plan(ctx, plan)

    try:
        plan, facts = desk.read(prepare)
        if isinstance(command, RestoreBreakGlass):
            request = break_glass(
                ctx,
                plan,
                commander=caller.user,
                holds_commander_role=COMMANDERS in fresh_roles(desk, caller.user),
                reason=command.reason,
                chat=caller.chat,
                request_id=request_id,
            )
            notice = (
                f"Break-glass restore {request.id} runs as {request.op_id}: it is announced "
                f"and audited, and an approver must review it (/restore review {request.id} -- …)."
            )
        else:
            request = open_restore_request(
                ctx,
                plan,
                caller.user,
                command.reason,
                caller.chat,
                facts=facts,
                request_id=request_id,
            )
            ttl = ctx.settings.approvals.ttl
            notice = (
                f"Restore request {request.id} is waiting for {request.required} approver(s) "
                f"other than you; it expires in {int(ttl.total_seconds() // 60)} minutes."
            )
    except BaseException:
        if caller.request_key:
            desk.forget(caller.request_key)
        raise
    return CardReply(request, ctx.clock(), _rto(ctx), notice)


def _decision_reply(
    ctx: Context, request: ApprovalRequest, notice: str, error: KosmosError | None = None
) -> DecisionReply:
    mark = ":no_entry: " if error is not None else ""
    return DecisionReply(request, ctx.clock(), _rto(ctx), mark + notice)


def _rto(ctx: Context) -> float:
    return ctx.settings.objectives.rto.total_seconds()


# -- Slack ------------------------------------------------------------------------------------


def register(app: Any, desk: Desk, client: Any) -> None:
    """Add the ``/restore`` command and the card's buttons to a Bolt app.

    Call it before any catch-all command listener: Bolt runs the first that matches.
    """
    from bot.handlers import dispatch

    def on_restore(ack: Any, command: dict[str, Any]) -> None:
        caller = _caller(command)
        reply = dispatch(desk, caller, "/restore", command.get("text") or "")
        if isinstance(reply, CardReply) and not reply.repeated:
            reply = _post_card(desk.ctx, client, caller.chat.channel, reply)
        elif isinstance(reply, DecisionReply):
            show_card(desk.ctx, client, reply.request)
        ack(response_type="ephemeral", **render(reply)[0].payload())

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


def show_card(ctx: Context, client: Any, request: ApprovalRequest) -> bool:
    """Update the request's card to what it is now; False when Slack refused."""
    if not request.card_channel or not request.card_ts:
        return False
    message = card(request, ctx.clock(), _rto(ctx))
    try:
        client.chat_update(channel=request.card_channel, ts=request.card_ts, **message.payload())
    except SlackApiError as exc:
        structlog.get_logger().warning("card update refused", request=request.id, error=str(exc))
        return False
    ctx.redis.hset(_cards_key(ctx), request.id, card_digest(request))
    return True


def card_digest(request: ApprovalRequest) -> str:
    """What a card shows, as a digest: a change means the card needs an update."""
    shown = request.model_dump_json(exclude={"reminded_at"})
    return hashlib.sha1(shown.encode()).hexdigest()


def _post_card(ctx: Context, client: Any, channel: str | None, reply: CardReply) -> CardReply:
    request = reply.request
    message = card(request, ctx.clock(), _rto(ctx))
    try:
        posted = client.chat_postMessage(
            channel=channel or ctx.settings.slack.channel, **message.payload()
        )
    except SlackApiError as exc:
        note = f"{reply.notice} The card could not be posted here ({exc.response.get('error')}); "
        note += f"approvers can use /restore approve {request.id}"
        return CardReply(request, reply.now, reply.rto_seconds, note)
    request = attach_card(ctx, request.id, str(posted["channel"]), str(posted["ts"]))
    ctx.redis.hset(_cards_key(ctx), request.id, card_digest(request))
    return CardReply(request, reply.now, reply.rto_seconds, reply.notice)


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


def _cards_key(ctx: Context) -> str:
    return f"{ctx.settings.redis.key_prefix}:{CARDS_KEY}"
