"""Restore approval cards in the channel: posted, remembered, and kept true after the fact.

``post_card`` posts a new request's card and ``show_card`` re-renders one; each remembers a
digest of what the card shows. Decisions made in Slack update their card at once. What
happens elsewhere (a request runs out of time, a worker refuses or finishes the restore, an
approval arrives from the CLI) is picked up by the keeper: each tick expires what is due,
nags about unreviewed break-glass restores, and re-renders every recent card whose request
changed since it was shown. Several bot replicas may run one each; the worst case is the
same update sent twice.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError

from bot.blocks.restore import card
from bot.replies.restore import CardReply
from workers.context import Context
from workers.core.approvals import ApprovalRequest
from workers.restore.requests import attach_card, expire_stale, remind_unreviewed, store_of

INTERVAL = 5.0
RECENT = 50
CARDS_KEY = "bot:cards"
"""Hash under the Redis prefix: request id -> digest of the request its card last showed."""


class CardKeeper:
    """Reconciles the newest requests' cards with their requests."""

    def __init__(self, ctx: Context, client: Any, interval: float = INTERVAL) -> None:
        self.ctx = ctx
        self.client = client
        self.interval = interval
        self.key = cards_key(ctx)

    def tick(self) -> list[str]:
        """One pass; returns the ids of requests whose card was updated."""
        expire_stale(self.ctx)
        remind_unreviewed(self.ctx)
        updated = []
        for request in store_of(self.ctx).recent(RECENT):
            if not request.card_ts:
                continue
            shown = self.ctx.redis.hget(self.key, request.id)
            shown = shown.decode() if isinstance(shown, bytes) else shown
            if shown != card_digest(request) and show_card(self.ctx, self.client, request):
                updated.append(request.id)
        return updated

    def run(self, stop: threading.Event | None = None) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set; outages are waited out."""
        stop = stop or threading.Event()
        while not stop.wait(self.interval):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the keeper outlives Redis and Slack blips
                structlog.get_logger().warning("card keeper tick failed", error=str(exc))


def start_card_keeper(ctx: Context, client: Any) -> CardKeeper:
    """Run a keeper for this process in a daemon thread."""
    keeper = CardKeeper(ctx, client)
    threading.Thread(target=keeper.run, name="kb-cards", daemon=True).start()
    return keeper


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
    ctx.redis.hset(cards_key(ctx), request.id, card_digest(request))
    return True


def card_digest(request: ApprovalRequest) -> str:
    """What a card shows, as a digest: a change means the card needs an update."""
    shown = request.model_dump_json(exclude={"reminded_at"})
    return hashlib.sha1(shown.encode()).hexdigest()


def post_card(ctx: Context, client: Any, channel: str | None, reply: CardReply) -> CardReply:
    """Post the card of a new request and remember it; a refusal tells approvers the command."""
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
    ctx.redis.hset(cards_key(ctx), request.id, card_digest(request))
    return CardReply(request, reply.now, reply.rto_seconds, reply.notice)


def cards_key(ctx: Context) -> str:
    """The Redis hash of digests of what each card last showed."""
    return f"{ctx.settings.redis.key_prefix}:{CARDS_KEY}"


def _rto(ctx: Context) -> float:
    return ctx.settings.objectives.rto.total_seconds()
