"""The scheduler's share of restores: expire stale requests, nag about unreviewed break-glass
restores, export the audit log once a day."""

from __future__ import annotations

import structlog

from workers.context import Context
from workers.core.errors import KosmosError
from workers.restore.guard import export_audit
from workers.restore.requests import expire_stale, remind_unreviewed


def tend_requests(ctx: Context) -> None:
    """The scheduler's share: expire, nag about unreviewed break-glass, export once a day."""
    log = structlog.get_logger("kosmos.approvals")
    try:
        expire_stale(ctx)
        remind_unreviewed(ctx)
        day = ctx.clock().date().isoformat()
        key = f"{ctx.settings.redis.key_prefix}:audit:export-day"
        if ctx.redis.get(key) not in (day, day.encode()):
            export_audit(ctx)
            ctx.redis.set(key, day)
    except KosmosError as exc:
        log.warning("approvals upkeep failed", error=exc.message)
