"""Keeps restore cards true after the fact: expiry, the worker's verdict, the final results.

Decisions made in Slack update their card at once. What happens elsewhere (a request runs
out of time, a worker refuses or finishes the restore, an approval arrives from the CLI)
is picked up here: each tick expires what is due, nags about unreviewed break-glass
restores, and re-renders every recent card whose request changed since it was shown.
Several bot replicas may run one each; the worst case is the same update sent twice.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog

from bot.handlers.restore import CARDS_KEY, card_digest, show_card
from workers.context import Context
from workers.restore.requests import expire_stale, remind_unreviewed, store_of

INTERVAL = 5.0
RECENT = 50


class CardKeeper:
    """Reconciles the newest requests' cards with their requests."""

    def __init__(self, ctx: Context, client: Any, interval: float = INTERVAL) -> None:
        self.ctx = ctx
        self.client = client
        self.interval = interval
        self.key = f"{ctx.settings.redis.key_prefix}:{CARDS_KEY}"

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
