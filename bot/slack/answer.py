"""Answering a slash command within Slack's 3 s, however slow the backup store is today.

A command's work (parse, authorize, read the catalog, enqueue) runs on a thread of its own.
Done within :data:`ANSWER_WITHIN`, its answer travels in the acknowledgement, as always. If
not (a cold catalog on a slow store, a loaded node), the acknowledgement says so and the
answer, or the error, follows through the command's ``response_url`` when the work ends:
nothing is lost, and Slack never retries a command that is still being worked on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import Any

import structlog

from bot.blocks.message import Message
from bot.blocks.operation import error_message, internal_error
from workers.core.errors import KosmosError
from workers.core.ids import new_operation_id

ANSWER_WITHIN = 2.0
"""Seconds a command's work may take before the acknowledgement goes without its answer."""
SLOW = "⏳ The backup store is slow to answer right now; the answer follows here."
"""The acknowledgement of a command whose answer follows through response_url."""

Respond = Callable[..., Any]


class Answers:
    """Runs commands' work on its own threads and answers each in time, now or later."""

    def __init__(self, clock: Callable[[], datetime], answer_within: float = ANSWER_WITHIN) -> None:
        self.clock = clock
        self.answer_within = answer_within
        self.pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kb-command")

    def answer(self, ack: Any, respond: Respond, work: Callable[[], list[Message]]) -> None:
        """Acknowledge with ``work``'s first message, or with :data:`SLOW` and answer later.

        An error raised in time reaches the caller (Bolt's error handler answers it); one
        raised later is answered through ``respond``, as the error handler would word it.
        """
        future = self.pool.submit(work)
        try:
            first, *more = future.result(timeout=self.answer_within)
        except FutureTimeout:
            ack(response_type="ephemeral", text=SLOW)
            future.add_done_callback(lambda done: self._later(done, respond))
            return
        ack(response_type="ephemeral", **first.payload())
        if more:
            # Further parts go through response_url after the ack, off the request thread.
            threading.Thread(target=respond_all, args=(respond, more), daemon=True).start()

    def _later(self, done: Future[list[Message]], respond: Respond) -> None:
        try:
            messages = done.result()
        except KosmosError as exc:
            messages = [error_message(exc)]
        except Exception as exc:  # noqa: BLE001 - answered with an id to quote, logged in full
            op_id = new_operation_id(self.clock())
            structlog.get_logger().error("internal error", operation=op_id, exc_info=exc)
            messages = [internal_error(op_id)]
        respond_all(respond, messages)


def respond_all(respond: Respond, messages: list[Message]) -> None:
    """Post each message through response_url; a lost one is logged, never raised."""
    for message in messages:
        try:
            respond(response_type="ephemeral", replace_original=False, **message.payload())
        except Exception as exc:  # noqa: BLE001 - a lost continuation must not kill the thread
            structlog.get_logger().warning("response_url post failed", error=str(exc))
