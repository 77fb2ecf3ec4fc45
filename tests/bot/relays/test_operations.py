"""The relay against the machine's Redis and the fake Slack: once per event, in place, in time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis as redis_lib

from bot.relays.operations import GROUP, Relay
from bot.slack.app import relay_client
from tests.fakes.slack import Call, FakeSlack
from workers.core.config import Settings
from workers.core.events import ChatContext, Event, EventType

ALERTS = "#kosmos-alerts"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], redis_url: str, fake: FakeSlack) -> Settings:
    return make_settings(
        env={"SLACK_BOT_TOKEN": "xoxb-test"},
        **{"redis.url": redis_url, "slack.api_url": fake.api_url, "slack.alert_channel": ALERTS},
    )


@pytest.fixture
def client(redis_url: str) -> Iterator[redis_lib.Redis]:
    connection = redis_lib.Redis.from_url(redis_url)
    yield connection
    connection.close()


class Running:
    """A relay consumer in a thread; ``stop`` ends it without flushing (as a crash would)."""

    def __init__(self, settings: Settings, name: str, reclaim_idle: float = 30.0) -> None:
        self.relay = Relay(
            settings,
            redis_lib.Redis.from_url(settings.redis.url),
            relay_client(settings),
            consumer=name,
            reclaim_idle=reclaim_idle,
            block_ms=100,
        )
        self.relay.ensure_group()
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self.relay.run, args=(self.halt,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.halt.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()
        self.relay.redis.close()


def append(client: redis_lib.Redis, settings: Settings, event: Event) -> str:
    stream = f"{settings.redis.key_prefix}:events"
    entry = client.xadd(stream, {"event": event.model_dump_json()})
    return entry.decode() if isinstance(entry, bytes) else str(entry)


def event(op_id: str, kind: EventType, channel: str = "C1", **fields: Any) -> Event:
    fields.setdefault("at", datetime.now(UTC))
    return Event(
        op_id=op_id,
        type=kind,
        operation="backup",
        component="postgres",
        chat=ChatContext(source="slack", channel=channel, user="UOPS"),
        **fields,
    )


def life(op_id: str, channel: str = "C1") -> list[Event]:
    return [
        event(op_id, EventType.ACCEPTED, channel),
        event(op_id, EventType.STARTED, channel),
        event(op_id, EventType.PROGRESS, channel, phase="dump", done_bytes=1, total_bytes=4),
        event(op_id, EventType.NOTE, channel, note=f"{op_id} dumped"),
        event(op_id, EventType.PROGRESS, channel, phase="upload", done_bytes=3, total_bytes=4),
        event(
            op_id,
            EventType.FINISHED,
            channel,
            summary={"backup_id": f"postgres-{op_id}", "size": 4096},
        ),
    ]


def play_life(
    client: redis_lib.Redis,
    settings: Settings,
    fake: FakeSlack,
    op_id: str,
    first_seen: Callable[[], bool],
) -> None:
    """Append an operation's first event, wait until ``first_seen``, then the rest, and wait
    until the relay has shown them all (done, two thread replies, nothing pending)."""
    first, *rest = life(op_id)
    append(client, settings, first)
    fake.wait_for(first_seen, timeout=15)
    for item in rest:
        append(client, settings, item)
    fake.wait_for(finished(fake, op_id), timeout=15)
    fake.wait_for(lambda: len(thread_posts(fake)) == 2 and pending(client, settings) == 0)


def top_posts(fake: FakeSlack, channel: str | None = None) -> list[Call]:
    return [
        c
        for c in fake.calls_to("chat.postMessage")
        if "thread_ts" not in c.params and (channel is None or c.params["channel"] == channel)
    ]


def thread_posts(fake: FakeSlack) -> list[Call]:
    return [c for c in fake.calls_to("chat.postMessage") if "thread_ts" in c.params]


def shown(fake: FakeSlack, op_id: str) -> str:
    """The current text of the one message that mentions ``op_id``."""
    found = [
        m for m in fake.messages.values() if "thread_ts" not in m and op_id in str(m["blocks"])
    ]
    assert len(found) == 1, found
    return str(found[0]["text"])


def pending(client: redis_lib.Redis, settings: Settings) -> int:
    info = client.xpending(f"{settings.redis.key_prefix}:events", GROUP)
    return int(info["pending"])


def idle_ms(client: redis_lib.Redis, settings: Settings) -> int:
    """How long the least idle of the group's pending entries has waited."""
    entries = client.xpending_range(f"{settings.redis.key_prefix}:events", GROUP, "-", "+", 100)
    return min(int(e["time_since_delivered"]) for e in entries)


def finished(fake: FakeSlack, *op_ids: str) -> Callable[[], bool]:
    def check() -> bool:
        texts = [str(m["text"]) for m in fake.messages.values() if "thread_ts" not in m]
        return all(any(f"postgres-{o}" in t for t in texts) for o in op_ids)

    return check


def gaps(calls: list[Call]) -> list[float]:
    moments = sorted(c.at for c in calls)
    return [b - a for a, b in zip(moments, moments[1:], strict=False)]


def test_one_message_per_operation_updated_in_place_with_details_in_its_thread(
    settings: Settings, client: redis_lib.Redis, fake: FakeSlack
) -> None:
    relay = Running(settings, "a")
    try:
        # Posted before the rest arrive, so the rest must update it (a relay that starts
        # late under load would otherwise find all six at once and post the end state).
        play_life(client, settings, fake, "op-1", lambda: len(top_posts(fake)) == 1)
    finally:
        relay.stop()
    assert len(top_posts(fake)) == 1
    assert (
        shown(fake, "op-1") == "Backup of postgres: done · 4.0 KiB · in 0s · backup postgres-op-1"
    )
    updates = fake.calls_to("chat.update")
    assert 1 <= len(updates) <= 3  # six events, coalesced
    assert all(gap >= 1.45 for gap in gaps(updates))
    assert [c.params["text"] for c in thread_posts(fake)] == [
        "op-1 dumped",
        "*backup id*: `postgres-op-1`\n*size*: 4.0 KiB (4096 bytes)",
    ]
    assert all(gap >= 0.95 for gap in gaps(fake.calls_to("chat.postMessage")))


def test_a_429_is_retried_after_retry_after(
    settings: Settings, client: redis_lib.Redis, fake: FakeSlack
) -> None:
    fake.rate_limit("chat.postMessage", times=1, retry_after=2)
    relay = Running(settings, "a")
    try:
        append(client, settings, event("op-9", EventType.ACCEPTED))
        fake.wait_for(lambda: len(top_posts(fake)) == 1, timeout=10)
    finally:
        relay.stop()
    refused, posted = fake.calls_to("chat.postMessage", ok_only=False)
    assert refused.status == 429 and posted.status == 200
    assert posted.at - refused.at >= 2.0


@pytest.mark.parametrize(
    ("name", "reclaim_idle", "down"),
    [("a", 30.0, 0.0), ("b", 1.0, 1.1)],
    ids=["same-consumer-reads-its-pending", "new-consumer-claims-the-dead-ones"],
)
def test_a_restarted_relay_neither_reposts_nor_loses_events(
    settings: Settings,
    client: redis_lib.Redis,
    fake: FakeSlack,
    name: str,
    reclaim_idle: float,
    down: float,
) -> None:
    events = life("op-2")
    first = Running(settings, "a")
    for item in events[:2]:
        append(client, settings, item)
    fake.wait_for(lambda: len(top_posts(fake)) == 1 and pending(client, settings) == 0)
    # Slack stops taking updates and threads: the next entries stay unacknowledged...
    fake.rate_limit("chat.update", times=50, retry_after=1)
    fake.rate_limit("chat.postMessage", times=50, retry_after=1)
    for item in events[2:4]:
        append(client, settings, item)
    fake.wait_for(
        lambda: (
            len(fake.calls_to("chat.update", ok_only=False)) >= 1 and pending(client, settings) == 2
        )
    )
    first.stop()  # ...and the relay dies holding them.
    for item in events[4:]:
        append(client, settings, item)  # arrives while no relay runs
    fake.clear_rate_limits()
    # Another consumer may claim only what sat idle that long: Redis says how long each has.
    fake.wait_for(lambda: idle_ms(client, settings) >= down * 1000, timeout=15)
    second = Running(settings, name, reclaim_idle=reclaim_idle)
    try:
        fake.wait_for(finished(fake, "op-2"), timeout=15)
        fake.wait_for(lambda: len(thread_posts(fake)) == 2 and pending(client, settings) == 0)
    finally:
        second.stop()
    assert len(top_posts(fake)) == 1
    assert sorted(c.params["text"].split("\n")[0] for c in thread_posts(fake)) == [
        "*backup id*: `postgres-op-2`",
        "op-2 dumped",
    ]


def test_two_replicas_post_each_event_exactly_once(
    settings: Settings, client: redis_lib.Redis, fake: FakeSlack
) -> None:
    replicas = [Running(settings, "r1"), Running(settings, "r2")]
    ops = [(f"op-{i}", f"C{i % 4}") for i in range(8)]
    try:
        for step in range(6):
            for op_id, channel in ops:
                append(client, settings, life(op_id, channel)[step])
                time.sleep(0.005)
        stamp = datetime.now(UTC)
        for i in range(3):
            append(
                client,
                settings,
                Event(
                    op_id=f"alert-{i}",
                    type=EventType.ALERT,
                    at=stamp,
                    operation="rpo-check",
                    component=f"component-{i}",
                    chat=ChatContext(source="monitor"),
                    message=f"breach {i}",
                ),
            )
        op_ids = [op_id for op_id, _ in ops]
        fake.wait_for(finished(fake, *op_ids), timeout=40)
        fake.wait_for(lambda: len(thread_posts(fake)) == 16 and pending(client, settings) == 0)
        fake.wait_for(lambda: len(top_posts(fake, ALERTS)) == 3)
    finally:
        for replica in replicas:
            replica.stop()
    for op_id, channel in ops:
        assert len([c for c in top_posts(fake) if op_id in str(c.params["blocks"])]) == 1
        assert shown(fake, op_id).endswith(f"backup postgres-{op_id}")
        assert top_posts(fake, channel)
    threads = sorted(c.params["text"] for c in thread_posts(fake))
    assert threads == sorted(
        [f"{o} dumped" for o in op_ids]
        + [f"*backup id*: `postgres-{o}`\n*size*: 4.0 KiB (4096 bytes)" for o in op_ids]
    )
    assert sorted(c.params["text"] for c in top_posts(fake, ALERTS)) == [
        f":rotating_light: *RPO alert — component-{i}*: breach {i}" for i in range(3)
    ]
    assert all(replica.relay.taken > 0 for replica in replicas)
    for channel in [ALERTS, *{c for _, c in ops}]:
        posts = [c for c in fake.calls_to("chat.postMessage") if c.params["channel"] == channel]
        assert all(gap >= 0.95 for gap in gaps(posts)), channel


def test_events_not_from_slack_or_too_old_are_acknowledged_without_a_post(
    settings: Settings, client: redis_lib.Redis, fake: FakeSlack
) -> None:
    relay = Running(settings, "a")
    try:
        scheduled = event("op-s", EventType.ACCEPTED).model_copy(
            update={"chat": ChatContext(source="scheduler")}
        )
        append(client, settings, scheduled)
        old = datetime.now(UTC) - timedelta(days=2)
        append(client, settings, event("op-old", EventType.ACCEPTED, at=old))
        append(client, settings, event("op-new", EventType.ACCEPTED))
        fake.wait_for(lambda: len(top_posts(fake)) == 1 and pending(client, settings) == 0)
    finally:
        relay.stop()
    assert "op-new" in str(top_posts(fake)[0].params["blocks"])


def op_messages(fake: FakeSlack, op_id: str) -> list[dict[str, Any]]:
    """Top-level messages in the fake that carry ``op_id`` as their metadata."""
    return [
        m
        for m in fake.messages.values()
        if "thread_ts" not in m
        and (m.get("metadata") or {}).get("event_payload") == {"op_id": op_id}
    ]


def test_a_post_whose_answer_was_lost_is_found_and_updated_not_posted_again(
    settings: Settings, client: redis_lib.Redis, fake: FakeSlack
) -> None:
    # Slack took the post, then the connection dropped before its answer: no idempotency
    # key exists, so only a look at the channel keeps the retry from posting twice.
    fake.lose_answers("chat.postMessage")
    relay = Running(settings, "a")
    try:
        play_life(
            client, settings, fake, "op-lost", lambda: bool(fake.calls_to("conversations.history"))
        )
    finally:
        relay.stop()
    assert len(top_posts(fake)) == 1  # the one whose answer was lost; never sent again
    (message,) = op_messages(fake, "op-lost")
    assert shown(fake, "op-lost").endswith("backup postgres-op-lost")
    assert {c.params["ts"] for c in fake.calls_to("chat.update")} == {message["ts"]}
    lookup = fake.calls_to("conversations.history")[0].params
    assert lookup["channel"] == "C1" and lookup["include_all_metadata"] in ("1", "true", "True")


def test_a_thread_reply_whose_answer_was_lost_is_not_posted_again(
    settings: Settings, client: redis_lib.Redis, fake: FakeSlack
) -> None:
    fake.lose_answers("chat.postMessage", when=lambda params: "thread_ts" in params)
    relay = Running(settings, "a")
    try:
        for item in life("op-reply"):
            append(client, settings, item)
        fake.wait_for(finished(fake, "op-reply"), timeout=15)
        fake.wait_for(lambda: len(thread_posts(fake)) >= 2 and pending(client, settings) == 0)
    finally:
        relay.stop()
    assert [c.params["text"].split("\n")[0] for c in thread_posts(fake)] == [
        "op-reply dumped",  # its answer lost, found in the thread, not sent again
        "*backup id*: `postgres-op-reply`",
    ]
    (lookup,) = fake.calls_to("conversations.replies")
    (message,) = op_messages(fake, "op-reply")
    assert lookup.params["ts"] == message["ts"]


def test_an_operation_whose_record_redis_lost_keeps_its_one_message(
    settings: Settings, client: redis_lib.Redis, fake: FakeSlack
) -> None:
    relay = Running(settings, "a")
    events = life("op-book")
    try:
        for item in events[:2]:
            append(client, settings, item)
        fake.wait_for(lambda: len(top_posts(fake)) == 1 and pending(client, settings) == 0)
        # Three other operations posted since, in the same channel.
        for other in ("op-x", "op-y", "op-z"):
            append(client, settings, event(other, EventType.ACCEPTED))
        fake.wait_for(lambda: len(top_posts(fake)) == 4 and pending(client, settings) == 0)
        for key in client.scan_iter(f"{settings.redis.key_prefix}:relay:op:*"):
            client.delete(key)  # the message book is gone; the stream goes on
        for item in events[2:]:
            append(client, settings, item)
        fake.wait_for(finished(fake, "op-book"), timeout=15)
        fake.wait_for(lambda: pending(client, settings) == 0)
    finally:
        relay.stop()
    assert len(top_posts(fake)) == 4
    assert len(op_messages(fake, "op-book")) == 1
    assert shown(fake, "op-book").endswith("backup postgres-op-book")


def test_without_history_access_a_lost_record_means_a_second_message_not_none(
    settings: Settings, client: redis_lib.Redis, fake: FakeSlack
) -> None:
    fake.fail["conversations.history"] = "missing_scope"
    relay = Running(settings, "a")
    events = life("op-scope")
    try:
        append(client, settings, events[0])
        fake.wait_for(lambda: len(top_posts(fake)) == 1 and pending(client, settings) == 0)
        for key in client.scan_iter(f"{settings.redis.key_prefix}:relay:op:*"):
            client.delete(key)
        for item in events[1:]:
            append(client, settings, item)
        fake.wait_for(lambda: len(top_posts(fake)) == 2 and pending(client, settings) == 0)
    finally:
        relay.stop()
    assert len(fake.calls_to("conversations.history")) == 1
    latest = max(op_messages(fake, "op-scope"), key=lambda m: float(m["ts"]))
    assert "backup postgres-op-scope" in str(latest["text"])
