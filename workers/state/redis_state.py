"""Redis I/O for jobs: the events stream, the operation registry, locks, leases, monitor state.

Keys live under the configured prefix ``P``::

    P:events                 stream of Event JSON (field ``event``), trimmed to ~EVENT_STREAM_MAXLEN
    P:op:<id>                hash: request, state, queue, timestamps, worker, last event, summary
    P:op:<id>:events         list of "<stream id> <event json>" (no progress events), capped
    P:ops                    sorted set of op ids by creation time (recent operations)
    P:running                sorted set of running op ids by last heartbeat (epoch seconds)
    P:lock:<name>            lease holder (op id or scheduler id), with a TTL
    P:monitor                hash: component -> AlertState JSON
    P:failures               hash: component -> consecutive failed backups
    P:failures:total         hash: component -> failed backups ever
    P:jobs:total             hash: "<kind>:<outcome>" -> count
    P:sched:*                scheduler bookkeeping (attempts, last upkeep runs, history)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import structlog

from workers.core.events import EVENT_STREAM, EVENT_STREAM_MAXLEN, Event, EventType
from workers.core.operations import OperationRequest, OperationState
from workers.core.rpo import AlertState

OP_TTL = timedelta(days=30)
RECENT_OPS_KEPT = 2000
OP_EVENTS_KEPT = 500
SCHEDULER_LOG_KEPT = 500

# Append an event and move the operation's state in one step, so that a reaped operation
# can never also report finished, and readers never see a state without its event.
_APPEND = """
local allowed = ARGV[5]
if allowed ~= '' then
  local current = redis.call('HGET', KEYS[2], 'state')
  if not current then return false end
  local ok = false
  for s in string.gmatch(allowed, '[^,]+') do
    if s == current then ok = true end
  end
  if not ok then return false end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'event', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 1 then
  if ARGV[7] == '1' then
    redis.call('RPUSH', KEYS[3], id .. ' ' .. ARGV[2])
    redis.call('LTRIM', KEYS[3], -tonumber(ARGV[8]), -1)
    redis.call('EXPIRE', KEYS[3], ARGV[6])
  end
  redis.call('HSET', KEYS[2], 'last_event', ARGV[2], 'last_event_id', id, 'updated_at', ARGV[3])
  if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], 'state', ARGV[4]) end
  for i = 9, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
return id
"""

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return ARGV[1] end
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return holder
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


_HAND_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) and 1 or 0
end
return 0
"""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisState:
    """Everything jobs, the scheduler and the front doors keep in Redis, behind one prefix."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        # redis-py's annotations mix in async return types; this is the sync client.
        self.client: Any = client
        self.prefix = prefix
        self._append = client.register_script(_APPEND)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._hand_over = client.register_script(_HAND_OVER)

    def key(self, *parts: str) -> str:
        """A key under this deployment's prefix."""
        return ":".join((self.prefix, *parts))

    # -- events -------------------------------------------------------------------------------

    @property
    def stream(self) -> str:
        """The events stream key."""
        return self.key(EVENT_STREAM)

    def append_event(
        self,
        event: Event,
        *,
        state: OperationState | None = None,
        only_from: Iterable[OperationState] = (),
        fields: dict[str, str] | None = None,
    ) -> str | None:
        """Append ``event``; with ``only_from``, only if the op's state is one of those.

        Returns the stream id, or None when the op was not in an allowed state.
        """
        pairs: list[str] = []
        for name, value in (fields or {}).items():
            pairs += [name, value]
        result = self._append(
            keys=[self.stream, self.key("op", event.op_id), self.key("op", event.op_id, "events")],
            args=[
                EVENT_STREAM_MAXLEN,
                event.model_dump_json(exclude_defaults=False),
                _iso(event.at),
                state.value if state else "",
                ",".join(s.value for s in only_from),
                int(OP_TTL.total_seconds()),
                "0" if event.type == EventType.PROGRESS else "1",
                OP_EVENTS_KEPT,
                *pairs,
            ],
        )
        return _text(result) if result else None

    def last_event_id(self) -> str:
        """The id of the newest event on the stream, or ``0-0`` when it is empty."""
        newest = self.client.xrevrange(self.stream, count=1)
        return _text(newest[0][0]) if newest else "0-0"

    def read_events(
        self, after: str = "0-0", count: int = 100, block_ms: int | None = None
    ) -> list[tuple[str, Event]]:
        """Events newer than stream id ``after``, oldest first (blocking up to ``block_ms``)."""
        reply = self.client.xread({self.stream: after}, count=count, block=block_ms)
        found: list[tuple[str, Event]] = []
        for _stream, entries in reply or []:
            for entry_id, data in entries:
                raw = data.get(b"event") or data.get("event")
                if raw is None:
                    continue
                try:
                    found.append((_text(entry_id), Event.model_validate_json(raw)))
                except ValueError:
                    structlog.get_logger().warning("malformed event skipped", id=_text(entry_id))
        return found

    def operation_events(self, op_id: str) -> list[tuple[str, Event]]:
        """The operation's recorded events (all but progress), oldest first."""
        found = []
        for raw in self.client.lrange(self.key("op", op_id, "events"), 0, -1):
            entry_id, _, body = _text(raw).partition(" ")
            found.append((entry_id, Event.model_validate_json(body)))
        return found

    # -- operations ----------------------------------------------------------------------------

    def record_operation(self, request: OperationRequest, queue: str, now: datetime) -> bool:
        """Register a new operation as queued; False when its id is already recorded."""
        key = self.key("op", request.op_id)
        if not self.client.hsetnx(key, "op_id", request.op_id):
            return False
        with self.client.pipeline() as pipe:
            pipe.hset(
                key,
                mapping={
                    "op_id": request.op_id,
                    "kind": request.kind.value,
                    "component": request.component or "",
                    "state": OperationState.QUEUED.value,
                    "queue": queue,
                    "request": request.model_dump_json(),
                    "created_at": _iso(now),
                    "updated_at": _iso(now),
                },
            )
            pipe.expire(key, OP_TTL)
            pipe.zadd(self.key("ops"), {request.op_id: now.timestamp()})
            pipe.zremrangebyrank(self.key("ops"), 0, -RECENT_OPS_KEPT - 1)
            pipe.execute()
        return True

    def operation(self, op_id: str) -> dict[str, Any] | None:
        """The operation's record as plain data, or None when unknown (or expired)."""
        raw = self.client.hgetall(self.key("op", op_id))
        if not raw:
            return None
        record: dict[str, Any] = {_text(k): _text(v) for k, v in raw.items()}
        for name in ("request", "last_event", "summary"):
            if name in record:
                record[name] = json.loads(record[name])
        for name in ("pid", "attempt"):
            if name in record:
                record[name] = int(record[name])
        return record

    def recent_operations(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest operations first."""
        ids = self.client.zrevrange(self.key("ops"), 0, max(0, limit - 1))
        with self.client.pipeline() as pipe:
            for op_id in ids:
                pipe.exists(self.key("op", _text(op_id)))
            present = pipe.execute()
        records = []
        for op_id, exists in zip(ids, present, strict=True):
            if exists:
                record = self.operation(_text(op_id))
                if record is not None:
                    records.append(record)
        return records

    def update_operation(self, op_id: str, **fields: str) -> None:
        """Set plain fields of an existing operation record."""
        key = self.key("op", op_id)
        if fields and self.client.exists(key):
            self.client.hset(key, mapping=fields)

    # -- running operations and their heartbeats -----------------------------------------------

    def server_time(self) -> datetime:
        """Redis's clock: heartbeats and their checks use it, so skewed hosts agree."""
        seconds, micros = self.client.time()
        return datetime.fromtimestamp(seconds + micros / 1_000_000, UTC)

    def beat(self, op_id: str, now: datetime | None = None) -> None:
        """Record that the job running ``op_id`` is alive (at Redis's time by default)."""
        moment = now or self.server_time()
        self.client.zadd(self.key("running"), {op_id: moment.timestamp()})

    def stop_beating(self, op_id: str) -> None:
        """Forget ``op_id``'s heartbeat (the job ended one way or another)."""
        self.client.zrem(self.key("running"), op_id)

    def stale_running(self, silent_since: datetime) -> list[tuple[str, datetime]]:
        """Running ops whose last heartbeat is older than ``silent_since``."""
        entries = self.client.zrangebyscore(
            self.key("running"), "-inf", silent_since.timestamp(), withscores=True
        )
        return [(_text(op), datetime.fromtimestamp(score, UTC)) for op, score in entries]

    # -- leases (component locks, scheduler leader) --------------------------------------------

    def acquire(self, name: str, owner: str, ttl: timedelta) -> str | None:
        """Take lease ``name`` for ``owner``; return the current holder when someone else has it."""
        holder = _text(self._acquire(keys=[self.key("lock", name)], args=[owner, _ms(ttl)]) or b"")
        return None if holder == owner else holder or None

    def renew(self, name: str, owner: str, ttl: timedelta) -> bool:
        """Extend the lease if ``owner`` still holds it."""
        return bool(self._renew(keys=[self.key("lock", name)], args=[owner, _ms(ttl)]))

    def release(self, name: str, owner: str) -> bool:
        """Give the lease back if ``owner`` still holds it."""
        return bool(self._release(keys=[self.key("lock", name)], args=[owner]))

    def hand_over(self, name: str, owner: str, successor: str, ttl: timedelta) -> bool:
        """Give lease ``name`` from ``owner`` straight to ``successor`` (no gap to grab it)."""
        return bool(
            self._hand_over(keys=[self.key("lock", name)], args=[owner, successor, _ms(ttl)])
        )

    def holder(self, name: str) -> str | None:
        """Who holds lease ``name`` now."""
        value = self.client.get(self.key("lock", name))
        return _text(value) if value is not None else None

    # -- monitor state and outcome counters ----------------------------------------------------

    def alert_states(self) -> dict[str, AlertState]:
        """Open (and closed) alerts by component."""
        raw = self.client.hgetall(self.key("monitor"))
        return {_text(k): AlertState.model_validate_json(v) for k, v in raw.items()}

    def save_alert_states(self, states: dict[str, AlertState]) -> None:
        """Store the monitor's alert states."""
        if states:
            self.client.hset(
                self.key("monitor"), mapping={k: v.model_dump_json() for k, v in states.items()}
            )

    def record_outcome(self, kind: str, component: str | None, ok: bool) -> None:
        """Count a job outcome; backups also keep each component's run of failures."""
        with self.client.pipeline() as pipe:
            pipe.hincrby(self.key("jobs", "total"), f"{kind}:{'finished' if ok else 'failed'}")
            if kind == "backup" and component:
                if ok:
                    pipe.hset(self.key("failures"), component, 0)
                else:
                    pipe.hincrby(self.key("failures"), component, 1)
                    pipe.hincrby(self.key("failures", "total"), component, 1)
            pipe.execute()

    def consecutive_failures(self) -> dict[str, int]:
        """Failed backups in a row, by component."""
        return _counts(self.client.hgetall(self.key("failures")))

    def failures_total(self) -> dict[str, int]:
        """Failed backups ever, by component."""
        return _counts(self.client.hgetall(self.key("failures", "total")))

    def job_totals(self) -> dict[str, int]:
        """Job outcomes by ``<kind>:<outcome>``."""
        return _counts(self.client.hgetall(self.key("jobs", "total")))

    # -- scheduler bookkeeping ----------------------------------------------------------------

    def last_attempt(self, track: str) -> tuple[str, datetime] | None:
        """The op id and time the scheduler last enqueued ``track``."""
        raw = self.client.hgetall(self.key("sched", "attempt", track))
        if not raw:
            return None
        data = {_text(k): _text(v) for k, v in raw.items()}
        return data["op_id"], datetime.fromisoformat(data["at"])

    def set_last_attempt(self, track: str, op_id: str, at: datetime) -> None:
        """Remember what the scheduler enqueued for ``track``."""
        self.client.hset(
            self.key("sched", "attempt", track), mapping={"op_id": op_id, "at": _iso(at)}
        )

    def log_scheduler(self, by: str, action: str, at: datetime) -> None:
        """Append one line to the scheduler's history (who did what, when)."""
        entry = json.dumps({"at": _iso(at), "by": by, "action": action})
        with self.client.pipeline() as pipe:
            pipe.rpush(self.key("sched", "log"), entry)
            pipe.ltrim(self.key("sched", "log"), -SCHEDULER_LOG_KEPT, -1)
            pipe.execute()

    def scheduler_log(self) -> list[dict[str, str]]:
        """The scheduler's recent history, oldest first."""
        return [json.loads(raw) for raw in self.client.lrange(self.key("sched", "log"), 0, -1)]


class Heartbeat:
    """A daemon thread that calls ``beat`` every ``interval`` until stopped (and once at start).

    Used for job heartbeats with component-lock renewal, and for the scheduler's leader lease.
    A failing beat is logged and retried at the next interval: Redis may blink.
    """

    def __init__(self, beat: Callable[[], None], interval: timedelta, name: str) -> None:
        self._beat = beat
        self._interval = interval.total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Heartbeat:
        """Beat now, then keep beating in the background."""
        self._safe_beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating (returns once the thread has ended)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._safe_beat()

    def _safe_beat(self) -> None:
        try:
            self._beat()
        except Exception:  # noqa: BLE001 - a heartbeat must outlive a Redis blip
            structlog.get_logger().warning("heartbeat failed", thread=self._thread.name)


def _ms(ttl: timedelta) -> int:
    return max(1, int(ttl.total_seconds() * 1000))


def _counts(raw: dict[Any, Any]) -> dict[str, int]:
    return {_text(k): int(v) for k, v in raw.items()}
