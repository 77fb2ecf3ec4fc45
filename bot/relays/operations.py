"""The relay: the event stream, read through a consumer group, becomes Slack messages.

Each operation started from Slack gets one message in its channel, updated in place (at
most once per 1.5 s), with notes and results in its thread; monitor alerts go to the alert
channel (at most one new post per second per channel, across replicas). An entry is
acknowledged only after Slack took what it means; an unacknowledged entry is read again
after a restart (this consumer's pending list) or claimed by another replica (XAUTOCLAIM).

Slack has no idempotency key, so an operation's message carries its op id as message
metadata. A post whose answer was lost (the connection dropped after Slack took it), or an
operation whose record Redis lost, is looked up in the channel's history before it is
posted again: one message per operation, not one per network fault.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError
from slack_sdk.errors import SlackApiError

from bot.blocks import operation as operation_blocks
from bot.metrics import BotMetrics
from bot.relays import posted, stream_group
from bot.relays.message_book import MessageBook, MessageRecord
from bot.replies.progress import fold
from workers.core.config import Settings
from workers.core.events import EVENT_STREAM, Event, EventType

GROUP = "relay"
# Slack's limits (one update per 1.5 s per message, one post per second per channel) hold
# where Slack receives the calls; the margin absorbs network jitter between two calls.
UPDATE_MS = 1600
POST_MS = 1100
RECLAIM_IDLE = 30.0
MAX_EVENT_AGE = timedelta(days=1)
_THREADED = frozenset({EventType.NOTE, EventType.FINISHED, EventType.FAILED})
_ALERTS = frozenset({EventType.ALERT, EventType.RECOVERED})


@dataclass(frozen=True)
class Entry:
    """One stream entry and the event it carries."""

    id: str
    event: Event


@dataclass
class _Waiting:
    entries: dict[str, Entry] = field(default_factory=dict)
    not_before: float = 0.0


class Relay:
    """One relay consumer; run several (one per bot replica) on the same group."""

    def __init__(
        self,
        settings: Settings,
        redis: Any,
        client: Any,
        *,
        consumer: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        reclaim_idle: float = RECLAIM_IDLE,
        block_ms: int = 500,
        metrics: BotMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.client = client
        self.consumer = consumer
        self.clock = clock
        self.reclaim_idle = reclaim_idle
        self.block_ms = block_ms
        self.metrics = metrics
        prefix = settings.redis.key_prefix
        self.stream = f"{prefix}:{EVENT_STREAM}"
        self.book = MessageBook(redis, prefix)
        self.alert_channel = settings.slack.alert_channel or settings.slack.channel
        self.ops: dict[str, _Waiting] = {}
        self.alerts: dict[str, Entry] = {}
        self.alerts_not_before = 0.0
        self._backlog_from: str | None = "0"
        self._next_reclaim = 0.0
        self.taken = 0
        self.log = structlog.get_logger().bind(consumer=consumer)

    # -- the loop ------------------------------------------------------------------------------

    def ensure_group(self) -> None:
        """Create the consumer group (from the stream's start) unless it exists."""
        stream_group.ensure_group(self.redis, self.stream, GROUP)

    def run(self, stop: threading.Event | None = None) -> None:
        """Relay until ``stop`` is set; Redis or Slack outages are waited out, never fatal."""
        stream_group.run_until(stop, self.ensure_group, self.step, self.log, "relay step")

    def step(self) -> None:
        """Read what is new (or reclaimable), then flush whatever is due."""
        now = time.monotonic()
        if now >= self._next_reclaim:
            self._reclaim()
            self._next_reclaim = now + self.reclaim_idle / 3
        self._take(self._read())
        self._flush()

    def idle(self) -> bool:
        """Whether nothing is waiting to be shown."""
        return not self.ops and not self.alerts and self._backlog_from is None

    # -- reading -------------------------------------------------------------------------------

    def _read(self) -> list[tuple[str, dict[bytes, bytes]]]:
        if self._backlog_from is not None:
            # After a restart: this consumer's own unacknowledged entries first.
            answer = self.redis.xreadgroup(
                GROUP, self.consumer, {self.stream: self._backlog_from}, count=200
            )
            entries = answer[0][1] if answer else []
            if not entries:
                self._backlog_from = None
                return []
            self._backlog_from = _text(entries[-1][0])
            return entries
        answer = self.redis.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=200, block=self._block_ms()
        )
        return answer[0][1] if answer else []

    def _block_ms(self) -> int:
        if not self.ops and not self.alerts:
            return self.block_ms
        due = min([w.not_before for w in self.ops.values()] + [self.alerts_not_before])
        return max(1, min(self.block_ms, int((due - time.monotonic()) * 1000)))

    def _reclaim(self) -> None:
        mine = [i for w in self.ops.values() for i in w.entries] + list(self.alerts)
        if mine:
            # Touch what this consumer still holds so no replica takes it as abandoned.
            self.redis.xclaim(self.stream, GROUP, self.consumer, 0, mine, justid=True)
        start = "0-0"
        while True:
            answer = self.redis.xautoclaim(
                self.stream, GROUP, self.consumer, int(self.reclaim_idle * 1000), start, count=200
            )
            start, claimed = _text(answer[0]), answer[1]
            self._take([c for c in claimed if c and c[1] is not None])
            if start == "0-0" or not claimed:
                return

    def _take(self, entries: list[tuple[Any, Any]]) -> None:
        self.taken += len(entries)
        done: list[str] = []
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            event = _event(fields)
            if event is None or self.clock() - event.at > MAX_EVENT_AGE:
                done.append(entry_id)
            elif event.type in _ALERTS:
                self.alerts[entry_id] = Entry(entry_id, event)
            elif event.chat.source == "slack" and event.chat.channel:
                waiting = self.ops.setdefault(event.op_id, _Waiting())
                waiting.entries[entry_id] = Entry(entry_id, event)
            else:
                done.append(entry_id)  # not from Slack: the console or CLI shows it
        self._ack(done)

    def _ack(self, ids: list[str]) -> None:
        if ids:
            self.redis.xack(self.stream, GROUP, *ids)

    # -- writing -------------------------------------------------------------------------------

    def _flush(self) -> None:
        now = time.monotonic()
        if self.alerts and now >= self.alerts_not_before:
            self._flush_alerts()
        for op_id in list(self.ops):
            waiting = self.ops[op_id]
            if now < waiting.not_before:
                continue
            with self.book.lock(op_id) as held:
                if not held:
                    waiting.not_before = now + 0.2
                    continue
                wait = self._flush_op(op_id, waiting)
            if not waiting.entries:
                del self.ops[op_id]
            else:
                waiting.not_before = time.monotonic() + wait

    def _flush_alerts(self) -> None:
        for entry_id in sorted(self.alerts, key=_order):
            wait = self.book.take("post", self.alert_channel, POST_MS)
            if wait:
                self.alerts_not_before = time.monotonic() + wait
                return
            message = operation_blocks.alert(self.alerts[entry_id].event)
            outcome = self._call(
                "chat_postMessage",
                ("post", self.alert_channel),
                channel=self.alert_channel,
                **message.payload(),
            )
            if isinstance(outcome, float):
                self.alerts_not_before = time.monotonic() + outcome
                return
            del self.alerts[entry_id]
            self._ack([entry_id])

    def _flush_op(self, op_id: str, waiting: _Waiting) -> float:
        """Show the operation as its entries say; return seconds to wait if not all is shown."""
        entries = sorted(waiting.entries.values(), key=lambda e: _order(e.id))
        record = self.book.load(op_id)
        view = record.view if record else None
        for entry in entries:
            view = fold(view, entry.event)
        assert view is not None
        channel = record.channel if record else str(entries[0].event.chat.channel)
        record = record or MessageRecord(
            op_id=op_id,
            channel=channel,
            view=view,
            thread_ts=entries[0].event.chat.thread_ts,
            # No record, yet past its first event: Redis lost it, not Slack the message.
            posting=entries[0].event.type is not EventType.ACCEPTED,
        )
        record.view = view
        wait = self._show(record)
        if wait:
            return wait
        for entry in entries:
            if entry.event.type in _THREADED and entry.id not in record.threaded:
                wait = self._thread(record, entry)
                if wait:
                    self.book.save(record)
                    self._settle(waiting, [e for e in entries if e.id in record.threaded])
                    return wait
        self.book.save(record)
        self._settle(waiting, entries)
        return 0.0

    def _show(self, record: MessageRecord) -> float:
        """Post or update the operation's message; seconds to wait when a limit says not yet."""
        rto = self.settings.objectives.rto.total_seconds()
        message = operation_blocks.operation(record.view, rto)
        digest = hashlib.sha1(json.dumps(message.payload(), sort_keys=True).encode()).hexdigest()
        if record.ts is not None and digest == record.rendered:
            return 0.0
        if record.ts is None and record.posting:
            found = self._find_posted(record)
            if isinstance(found, float):
                return found
            record.ts, record.posting = found, False  # found, or not there: post it
            self.book.save(record)
        if record.ts is None:
            wait = self.book.take("post", record.channel, POST_MS)
            if wait:
                return wait
            record.posting = True
            self.book.save(record)  # if no answer comes, the next try looks before posting
            outcome = self._call(
                "chat_postMessage",
                ("post", record.channel),
                channel=record.channel,
                **({"thread_ts": record.thread_ts} if record.thread_ts else {}),
                metadata=posted.mark(record.op_id),
                **message.payload(),
            )
            if isinstance(outcome, Unanswered):
                return outcome
            record.posting = False  # posted, or refused: either way Slack answered
            if isinstance(outcome, float):
                return outcome
            if outcome is not None:
                record.channel, record.ts = outcome["channel"], outcome["ts"]
                self.book.take("update", record.op_id, UPDATE_MS)
        else:
            wait = self.book.take("update", record.op_id, UPDATE_MS)
            if wait:
                return wait
            outcome = self._call(
                "chat_update",
                ("update", record.op_id),
                channel=record.channel,
                ts=record.ts,
                **message.payload(),
            )
            if isinstance(outcome, float):
                return outcome
        record.rendered = digest
        self.book.save(record)
        return 0.0

    def _thread(self, record: MessageRecord, entry: Entry) -> float:
        if record.ts is None:
            record.threaded.append(entry.id)  # the message could not be posted at all
            return 0.0
        if entry.id in record.unsure:
            found = self._find_posted(record, entry.id)
            if isinstance(found, float):
                return found
            record.unsure.remove(entry.id)
            if found is not None:
                record.threaded.append(entry.id)
                return 0.0
        wait = self.book.take("post", record.channel, POST_MS)
        if wait:
            return wait
        message = operation_blocks.detail(entry.event)
        outcome = self._call(
            "chat_postMessage",
            ("post", record.channel),
            channel=record.channel,
            thread_ts=record.thread_ts or record.ts,
            metadata=posted.mark(record.op_id, entry.id),
            **message.payload(),
        )
        if isinstance(outcome, Unanswered):
            record.unsure.append(entry.id)  # saved by _flush_op before it waits
        if isinstance(outcome, float):
            return outcome
        record.threaded.append(entry.id)
        return 0.0

    def _find_posted(
        self, record: MessageRecord, entry_id: str | None = None
    ) -> str | None | float:
        """The ts of the operation's message (or of one entry's thread reply) if Slack has
        it; seconds to wait if that cannot be known yet."""
        thread = (record.thread_ts or record.ts) if entry_id else record.thread_ts
        wanted = posted.mark(record.op_id, entry_id)["event_payload"]

        def call(method: str, **kwargs: Any) -> dict[str, Any] | float | None:
            return self._call(method, ("lookup", record.channel), **kwargs)

        found = posted.find(call, record.channel, thread, wanted)
        if isinstance(found, str):
            self.log.info("found a message already posted", **wanted)
        return found

    def _settle(self, waiting: _Waiting, entries: list[Entry]) -> None:
        self._ack([e.id for e in entries])
        for entry in entries:
            waiting.entries.pop(entry.id, None)

    def _call(
        self, method: str, token: tuple[str, str], **kwargs: Any
    ) -> dict[str, Any] | float | None:
        """Call Slack: its answer, seconds to wait (429, network), or None when Slack refused.

        On 429 the token (a channel's posts, a message's updates) stays closed for the
        Retry-After that Slack gave, for every replica.
        """
        try:
            answer = dict(getattr(self.client, method)(**kwargs).data)
            self._count(method, "ok")
            return answer
        except SlackApiError as exc:
            response = exc.response
            self._count(method, "rate-limited" if response.status_code == 429 else "refused")
            if response.status_code == 429:
                wait = retry_after(response.headers)
                self.book.hold(*token, wait)
                self.log.info("slack rate limit", method=method, retry_after=wait)
                return wait
            self.log.warning("slack refused", method=method, error=response.get("error"))
            return None
        except OSError as exc:
            self._count(method, "unreachable")
            self.log.warning("slack unreachable", method=method, error=str(exc))
            return Unanswered(2.0)

    def _count(self, method: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.slack_calls.labels(method, outcome).inc()


class Unanswered(float):
    """Seconds to wait after a call that got no answer: Slack may or may not have done it."""


def retry_after(headers: Any) -> float:
    """The seconds a 429's Retry-After asks for (1 when it says nothing usable)."""
    for name, value in dict(headers or {}).items():
        if name.lower() == "retry-after":
            text = value[0] if isinstance(value, list) else value
            try:
                return max(0.1, float(text))
            except ValueError:
                break
    return 1.0


def _event(fields: dict[Any, Any] | None) -> Event | None:
    if not fields:
        return None
    raw = fields.get(b"event", fields.get("event"))
    if raw is None:
        return None
    try:
        return Event.model_validate_json(raw)
    except ValidationError:
        structlog.get_logger().warning("unreadable event on stream", raw=str(raw)[:200])
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _order(entry_id: str) -> tuple[int, int]:
    millis, _, seq = entry_id.partition("-")
    return int(millis), int(seq or 0)
