"""Redis stream consumer-group plumbing shared by the relays."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def ensure_group(redis: Any, stream: str, group: str) -> None:
    """Create the consumer group (from the stream's start) unless it exists."""
    try:
        redis.xgroup_create(stream, group, id="0", mkstream=True)
    except Exception as exc:  # redis.ResponseError; BUSYGROUP means it already exists
        if "BUSYGROUP" not in str(exc):
            raise


def run_until(
    stop: threading.Event | None,
    ensure: Callable[[], None],
    step: Callable[[], None],
    log: Any,
    what: str,
) -> None:
    """Call ``step`` until ``stop`` is set; Redis or Slack outages are waited out, never fatal."""
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            ensure()
            while not stop.is_set():
                step()
        except Exception as exc:  # noqa: BLE001 - a relay outlives outages
            log.warning(f"{what} failed", error=str(exc))
            stop.wait(1.0)
