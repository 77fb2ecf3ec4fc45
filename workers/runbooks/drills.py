"""The last DR drill as the status boards show it (CLI, console, Slack).

Read here, beside the flow rather than through it: ``status`` is polled by scripts and cron,
and the flow would load every runbook model (about half of a ``status``'s start-up).
"""

from __future__ import annotations

from typing import Any

from workers.context import Context
from workers.core.errors import KosmosError
from workers.state.runbook_store import RunStore


def last_drill(ctx: Context) -> dict[str, Any] | None:
    """The last finished drill (``finished_at``, ``result``, ``rto_seconds``, its objective);
    None when none ran, or when it cannot be read (logged: a board still shows the backups)."""
    store = RunStore(ctx.redis, ctx.repo.store, ctx.settings.redis.key_prefix)
    try:
        return store.last_drill()
    except KosmosError as exc:
        store.log.warning("last drill unreadable", error=exc.message)
        return None
