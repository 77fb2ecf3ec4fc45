"""RedisState against the machine's Redis: events, operation states, leases, heartbeats."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis as redis_lib

from tests.sync import wait_until
from workers.core.events import ChatContext, Event, EventType
from workers.core.operations import OperationKind, OperationRequest, OperationState
from workers.core.rpo import AlertState
from workers.state.redis_state import Heartbeat, RedisState

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def state(url: str) -> RedisState:
    return RedisState(redis_lib.Redis.from_url(url), "kt")


def request(op_id: str = "op-1") -> OperationRequest:
    return OperationRequest(
        op_id=op_id,
        kind=OperationKind.BACKUP,
        component="postgres",
        chat=ChatContext(source="slack", channel="C1", thread_ts="1.2", user="U1"),
        requested_at=NOW,
        requested_by="U1",
    )


def event(kind: EventType, op_id: str = "op-1", **values: object) -> Event:
    return Event(
        op_id=op_id,
        type=kind,
        at=NOW,
        operation="backup",
        component="postgres",
        chat=request(op_id).chat,
        **values,  # type: ignore[arg-type]
    )


def test_events_are_appended_in_order_and_read_back(redis_url: str) -> None:
    store = state(redis_url)
    store.record_operation(request(), "kosmos-default", NOW)
    start = store.last_event_id()
    for kind in (EventType.ACCEPTED, EventType.STARTED, EventType.PROGRESS, EventType.FINISHED):
        assert store.append_event(event(kind, summary={"n": 1}))
    read = store.read_events(start)
    assert [e.type for _id, e in read] == ["accepted", "started", "progress", "finished"]
    assert read[0][1].chat.channel == "C1"
    ids = [entry_id for entry_id, _ in read]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
    assert store.read_events(ids[-1]) == []
    # The per-operation history keeps everything but progress.
    assert [e.type for _id, e in store.operation_events("op-1")] == [
        "accepted",
        "started",
        "finished",
    ]
    record = store.operation("op-1")
    assert record is not None
    assert record["last_event"]["type"] == "finished"
    assert record["last_event_id"] == ids[-1]


def test_state_transitions_are_guarded(redis_url: str) -> None:
    store = state(redis_url)
    store.record_operation(request(), "kosmos-default", NOW)
    running = store.append_event(
        event(EventType.STARTED),
        state=OperationState.RUNNING,
        only_from=(OperationState.QUEUED,),
        fields={"worker": "w1"},
    )
    assert running is not None
    failed = store.append_event(
        event(EventType.FAILED, message="worker died"),
        state=OperationState.FAILED,
        only_from=(OperationState.RUNNING,),
    )
    assert failed is not None
    # The job itself finishing late must not turn a failed operation into a finished one.
    late = store.append_event(
        event(EventType.FINISHED),
        state=OperationState.FINISHED,
        only_from=(OperationState.RUNNING,),
    )
    assert late is None
    record = store.operation("op-1")
    assert record is not None
    assert record["state"] == "failed" and record["worker"] == "w1"
    assert [e.type for _id, e in store.operation_events("op-1")] == ["started", "failed"]


def test_record_operation_claims_an_id_once(redis_url: str) -> None:
    store = state(redis_url)
    assert store.record_operation(request(), "kosmos-default", NOW)
    assert not store.record_operation(request(), "kosmos-default", NOW)
    store.record_operation(request("op-2"), "kosmos-default", NOW + timedelta(seconds=1))
    assert [r["op_id"] for r in store.recent_operations(10)] == ["op-2", "op-1"]
    assert store.operation("op-unknown") is None


def test_lease_excludes_others_and_dies_with_its_ttl(redis_url: str) -> None:
    store = state(redis_url)
    ttl = timedelta(milliseconds=600)
    assert store.acquire("postgres", "op-a", ttl) is None
    assert store.acquire("postgres", "op-b", ttl) == "op-a"
    assert store.acquire("postgres", "op-a", ttl) is None  # re-entrant for its owner
    assert not store.renew("postgres", "op-b", ttl)
    assert not store.release("postgres", "op-b")
    assert store.holder("postgres") == "op-a"
    assert 0 < store.client.pttl(store.key("lock", "postgres")) <= 600
    # The holder died: its TTL frees the lease.
    wait_until(lambda: store.holder("postgres") is None, 5, "the lease to expire")
    assert store.acquire("postgres", "op-b", ttl) is None
    assert store.release("postgres", "op-b")
    assert store.holder("postgres") is None


def test_heartbeat_keeps_a_lease_alive_past_its_ttl(redis_url: str) -> None:
    store = state(redis_url)
    ttl = timedelta(milliseconds=600)
    acquired = time.monotonic()
    store.acquire("postgres", "op-a", ttl)
    renewals: list[float] = []

    def renew() -> None:
        if store.renew("postgres", "op-a", ttl):
            renewals.append(time.monotonic() - acquired)

    beat = Heartbeat(renew, timedelta(milliseconds=150), name="t").start()
    # Held by renewals alone: the last one came after the first TTL had run out.
    wait_until(lambda: renewals and renewals[-1] > 2 * ttl.total_seconds(), 10, "renewals")
    assert store.holder("postgres") == "op-a"
    beat.stop()
    wait_until(lambda: store.holder("postgres") is None, 5, "the lease to expire")


def test_stale_running_finds_silent_operations(redis_url: str) -> None:
    store = state(redis_url)
    store.beat("op-old", NOW - timedelta(minutes=2))
    store.beat("op-new", NOW)
    stale = store.stale_running(NOW - timedelta(seconds=60))
    assert [op for op, _ in stale] == ["op-old"]
    assert stale[0][1] == NOW - timedelta(minutes=2)
    store.stop_beating("op-old")
    assert store.stale_running(NOW) == [("op-new", NOW)]


def test_outcomes_and_alert_states(redis_url: str) -> None:
    store = state(redis_url)
    store.record_outcome("backup", "postgres", ok=False)
    store.record_outcome("backup", "postgres", ok=False)
    assert store.consecutive_failures() == {"postgres": 2}
    store.record_outcome("backup", "postgres", ok=True)
    store.record_outcome("verify", "postgres", ok=False)
    assert store.consecutive_failures() == {"postgres": 0}
    assert store.failures_total() == {"postgres": 2}
    assert store.job_totals() == {"backup:failed": 2, "backup:finished": 1, "verify:failed": 1}
    alert = AlertState(active=True, op_id="op-x", reason="late", since=NOW)
    store.save_alert_states({"postgres": alert, "etcd": AlertState()})
    assert store.alert_states() == {"postgres": alert, "etcd": AlertState()}


def test_heartbeats_use_redis_time(redis_url: str) -> None:
    store = state(redis_url)
    store.beat("op-live")
    [(op, at)] = store.stale_running(store.server_time() + timedelta(seconds=1))
    assert op == "op-live"
    assert abs((store.server_time() - at).total_seconds()) < 5
