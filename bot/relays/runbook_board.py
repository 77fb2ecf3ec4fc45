"""The DR board relay: runbook run events become the checklist board and its thread.

It reads the event stream through its own consumer group (``dr-board``), so several bot
replicas show each change once. For each run it posts the board (then updates it in place,
at most once per 1.5 s), keeps one card per step in the board's thread (updated as the step
moves, buttons replaced by the answer), posts the approval card of a gated step, announces
a failed step in the channel, and when the run ends uploads the report's chart and Markdown
with the two-step external upload, its comment naming where the report is stored.
The generic relay leaves these events alone (their source is ``runbook``).

A run's events are acknowledged once Slack took what they mean. When a call is rate-limited
or Slack cannot be reached, they stay pending and the run is shown again (from its state
then) after the Retry-After or a few seconds: the last change of a run, its end, is never
dropped for a 429.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from pydantic import ValidationError
from slack_sdk.errors import SlackApiError

from bot.blocks.runbook import board, step_card
from bot.mrkdwn import escape
from bot.relays import stream_group
from bot.relays.operations import retry_after
from bot.replies.runbook_feed import failure_text, report_lines
from workers.context import Context
from workers.core.events import EVENT_STREAM, Event, EventType
from workers.core.runbook_run import Awaiting, RunState

GROUP = "dr-board"
UPDATE_SECONDS = 1.5
RETRY_SECONDS = 3.0
"""Seconds before showing a run again after Slack could not be reached."""
MAX_EVENT_AGE = timedelta(days=1)
OPERATION = "dr-step"
FAILED = ("stop", "ask")
"""What a step event says when the step failed for good or asks a person after failing."""


@dataclass
class _Pending:
    entries: list[tuple[str, Event]] = field(default_factory=list)
    not_before: float = 0.0


class DrBoard:
    """One consumer of the ``dr-board`` group."""

    def __init__(self, ctx: Context, client: Any, *, consumer: str, block_ms: int = 500) -> None:
        self.ctx = ctx
        self.client = client
        self.consumer = consumer
        self.block_ms = block_ms
        prefix = ctx.settings.redis.key_prefix
        self.stream = f"{prefix}:{EVENT_STREAM}"
        self.cards_prefix = f"{prefix}:dr:cards"
        self.runs: dict[str, _Pending] = {}
        self._backlog: str | None = "0"
        self._retry_in: float | None = None
        """Set by a call that Slack did not take for now (429, unreachable): seconds to wait."""
        self.log = structlog.get_logger("kosmos.dr").bind(consumer=consumer)

    def ensure_group(self) -> None:
        """Create the consumer group unless it exists."""
        stream_group.ensure_group(self.ctx.redis, self.stream, GROUP)

    def run(self, stop: threading.Event | None = None) -> None:
        """Relay until ``stop`` is set; outages are waited out."""
        stream_group.run_until(stop, self.ensure_group, self.step, self.log, "dr board step")

    def step(self) -> None:
        """Read what is new, then show every run whose update is due."""
        for entry_id, fields in self._read():
            event = _event(fields)
            if event is None or not _is_run_event(event) or self._too_old(event):
                self.ctx.redis.xack(self.stream, GROUP, entry_id)
                continue
            self.runs.setdefault(event.op_id, _Pending()).entries.append((entry_id, event))
        now = time.monotonic()
        for run_id in list(self.runs):
            pending = self.runs[run_id]
            if now < pending.not_before:
                continue
            if not pending.entries:
                del self.runs[run_id]  # quiet for a whole interval: forget it
                continue
            self._retry_in = None
            self._show(run_id, pending.entries)
            if self._retry_in is not None:
                # Not all of it reached Slack: the same entries, shown again later.
                pending.not_before = time.monotonic() + max(self._retry_in, UPDATE_SECONDS)
                self.log.info("dr board shown again later", run_id=run_id, wait=self._retry_in)
                continue
            self.ctx.redis.xack(self.stream, GROUP, *[e for e, _ in pending.entries])
            # Updates of one board are at most one per interval; later events wait here.
            self.runs[run_id] = _Pending(not_before=time.monotonic() + UPDATE_SECONDS)

    def idle(self) -> bool:
        """Whether nothing waits to be shown."""
        return self._backlog is None and not any(p.entries for p in self.runs.values())

    def _read(self) -> list[tuple[str, Any]]:
        redis = self.ctx.redis
        if self._backlog is not None:
            answer = redis.xreadgroup(GROUP, self.consumer, {self.stream: self._backlog}, count=200)
            entries = answer[0][1] if answer else []
            if entries:
                self._backlog = _text(entries[-1][0])
                return [(_text(i), f) for i, f in entries]
            self._backlog = None
        waiting = any(p.entries for p in self.runs.values())
        answer = redis.xreadgroup(
            GROUP,
            self.consumer,
            {self.stream: ">"},
            count=200,
            block=50 if waiting else self.block_ms,
        )
        return [(_text(i), f) for i, f in (answer[0][1] if answer else [])]

    def _too_old(self, event: Event) -> bool:
        return self.ctx.clock() - event.at > MAX_EVENT_AGE

    # -- showing -------------------------------------------------------------------------------

    def _show(self, run_id: str, entries: list[tuple[str, Event]]) -> None:
        # Replicas share the group, so one run's events reach several of them: the run's
        # lock lets one at a time post (never two boards) and show the state as it is now.
        lock = self.ctx.redis.lock(f"{self.cards_prefix}:{run_id}:lock", timeout=60)
        if not lock.acquire(blocking_timeout=20):
            self.log.warning("board busy; showing it anyway", run_id=run_id)
        try:
            self._show_locked(run_id, entries)
        finally:
            with contextlib.suppress(Exception):
                lock.release()

    def _show_locked(self, run_id: str, entries: list[tuple[str, Event]]) -> None:
        from workers.runbooks import flow as runbook_flow

        try:
            run = runbook_flow.current(self.ctx, None, run_id)
        except Exception as exc:  # noqa: BLE001 - a run that cannot be read is logged, not fatal
            self.log.warning("run unreadable", run_id=run_id, error=str(exc))
            return
        if not run.chat.channel:
            return
        # The board is posted first (the step cards live in its thread) but updated last, so
        # that by the time it shows a step, or the whole run, as done, that step's card does.
        fresh = run.board_ts is None
        if fresh:
            run = self._board(run)
            if run.board_ts is None:
                return
        for step_id in dict.fromkeys(
            str(e.summary.get("step")) for _, e in entries if e.summary.get("step")
        ):
            self._card(run, step_id)
        if not fresh:
            self._board(run)
        for step_id in dict.fromkeys(
            str(e.summary.get("step")) for _, e in entries if e.summary.get("what") in FAILED
        ):
            self._announce_failure(run, step_id)
        if any(e.type in (EventType.FINISHED, EventType.FAILED) for _, e in entries):
            self._report(run)

    def _board(self, run: RunState) -> RunState:
        from workers.runbooks import flow as runbook_flow

        message = board(run, self.ctx.clock())
        channel = str(run.chat.channel)
        if run.board_ts is None:
            answer = self._call("chat_postMessage", channel=channel, **message.payload())
            if answer is None:
                return run
            return runbook_flow.set_board(self.ctx, run.run_id, answer["channel"], answer["ts"])
        self._call("chat_update", channel=channel, ts=run.board_ts, **message.payload())
        return run

    def _card(self, run: RunState, step_id: str) -> None:
        if step_id not in run.steps:
            return
        key = f"{self.cards_prefix}:{run.run_id}"
        message = step_card(run, step_id, self.ctx.clock())
        channel = str(run.chat.channel)
        ts = self.ctx.redis.hget(key, step_id)
        if ts is not None:
            self._call("chat_update", channel=channel, ts=_text(ts), **message.payload())
        else:
            answer = self._call(
                "chat_postMessage", channel=channel, thread_ts=run.board_ts, **message.payload()
            )
            if answer is not None:
                self.ctx.redis.hset(key, step_id, answer["ts"])
                self.ctx.redis.expire(key, int(timedelta(days=30).total_seconds()))
        state = run.steps[step_id]
        if state.awaiting == Awaiting.APPROVAL and (state.approval_id or "").startswith("rr-"):
            self._approval_card(run, str(state.approval_id))

    def _approval_card(self, run: RunState, request_id: str) -> None:
        """Post the restore request's own card (Approve / Deny) once, in the channel."""
        from bot.blocks.restore import card
        from workers.restore.requests import attach_card, store_of

        request = store_of(self.ctx).find(request_id)
        if request is None or request.card_ts:
            return
        message = card(request, self.ctx.clock(), run.rto.total_seconds())
        answer = self._call("chat_postMessage", channel=str(run.chat.channel), **message.payload())
        if answer is not None:
            attach_card(self.ctx, request_id, answer["channel"], answer["ts"])

    def _announce_failure(self, run: RunState, step_id: str) -> None:
        """Say in the channel that a step failed (once per attempt), not only on the board."""
        state = run.steps.get(step_id)
        key = f"{self.cards_prefix}:{run.run_id}"
        seen = f"_failed:{step_id}:{state.attempts}" if state else ""
        if state is None or not self.ctx.redis.hsetnx(key, seen, 1):
            return
        text = escape(failure_text(run, step_id))
        if self._call("chat_postMessage", channel=str(run.chat.channel), text=text) is None:
            self.ctx.redis.hdel(key, seen)  # not said: the next showing says it

    def _report(self, run: RunState) -> None:
        from workers.runbooks import flow as runbook_flow

        key = f"{self.cards_prefix}:{run.run_id}"
        if not run.report or not self.ctx.redis.hsetnx(key, "_report", "uploading"):
            return
        store = runbook_flow.runs(self.ctx)
        try:
            upload_report(
                self.client,
                channel=str(run.chat.channel),
                run_id=str(run.report["run_id"]),
                markdown=store.artifact(run.run_id, "report.md").decode(),
                png=store.artifact(run.run_id, "report.png"),
                comment=escape("\n".join(report_lines(run.report))),
            )
        except Exception as exc:  # noqa: BLE001 - the report stays in storage; say so in the log
            self.ctx.redis.hdel(key, "_report")
            self._later(exc)  # a 429 or an outage: uploaded on the next showing
            self.log.warning("report upload failed", run_id=run.run_id, error=str(exc))
            return
        self.ctx.redis.hset(key, "_report", "uploaded")

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any] | None:
        """Slack's answer, or None: refused for good, or not now (then ``_retry_in`` is set)."""
        try:
            return dict(getattr(self.client, method)(**kwargs).data)
        except SlackApiError as exc:
            if self._later(exc):
                self.log.info("slack rate limit", method=method, retry_after=self._retry_in)
            else:
                self.log.warning("slack refused", method=method, error=exc.response.get("error"))
        except OSError as exc:
            self._later(exc)
            self.log.warning("slack unreachable", method=method, error=str(exc))
        return None

    def _later(self, exc: BaseException) -> bool:
        """Whether Slack did not take a call for now (429, unreachable); if so the run is
        shown again after ``_retry_in`` seconds."""
        if isinstance(exc, SlackApiError) and exc.response.status_code == 429:
            wait = retry_after(exc.response.headers)
        elif isinstance(exc, OSError):
            wait = RETRY_SECONDS
        else:
            return False
        self._retry_in = max(self._retry_in or 0.0, wait)
        return True


def upload_report(
    client: Any, *, channel: str, run_id: str, markdown: str, png: bytes, comment: str
) -> list[str]:
    """Upload a run's chart and Markdown report with Slack's two-step external upload.

    ``files_upload_v2`` asks ``files.getUploadURLExternal`` for each file, POSTs the bytes
    to the URL it got, then shares them with ``files.completeUploadExternal``; the files go
    to ``channel`` with ``comment``. Returns the file ids.
    """
    response = client.files_upload_v2(
        channel=channel,
        thread_ts=None,
        initial_comment=comment,
        file_uploads=[
            {"content": png, "filename": f"{run_id}-timeline.png", "title": "Timeline"},
            {
                "content": markdown.encode(),
                "filename": f"{run_id}-report.md",
                "title": "Report (Markdown)",
            },
        ],
    )
    files = response.get("files") or []
    return [str(f.get("id")) for f in files if isinstance(f, dict)]


def start_dr_board(ctx: Context, client: Any, consumer: str) -> DrBoard:
    """Run the DR board relay for this process in a daemon thread."""
    relay = DrBoard(ctx, client, consumer=consumer)
    threading.Thread(target=relay.run, name="kb-dr-board", daemon=True).start()
    return relay


def _is_run_event(event: Event) -> bool:
    return event.operation == OPERATION and event.op_id.startswith("dr-")


def _event(fields: Any) -> Event | None:
    raw = (fields or {}).get(b"event", (fields or {}).get("event"))
    if raw is None:
        return None
    try:
        return Event.model_validate_json(raw)
    except ValidationError:
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
