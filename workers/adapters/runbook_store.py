"""Runbook runs in Redis, written through to the backup storage after every change.

In a disaster Redis may be what was lost, so every change of a run is also stored as
``_dr/<run-id>/state.json`` beside the backups; :meth:`RunStore.restore` brings it back.
Keys under the prefix ``P``::

    P:dr:run:<id>          the run's state (JSON)
    P:dr:runs              sorted set of run ids by start time
    P:dr:channel:<id>      the channel's current run
    P:dr:last-drill        summary of the last finished drill (JSON; also _dr/last-drill.json)
    P:dr:lock:<id>         a short lock around each read-modify-write of a run
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

import redis
import structlog
from pydantic import ValidationError

from workers.core.errors import ConflictError, IntegrityError, NotFoundError, StorageError
from workers.core.ports import Store
from workers.core.runbook_run import RunState

DR_PREFIX = "_dr"
LOCK_TIMEOUT = 30.0
LOCK_WAIT = 15.0
LAST_DRILL_CACHE = 600
T = TypeVar("T")


def state_key(run_id: str) -> str:
    """Where a run's state lives in the storage."""
    return f"{DR_PREFIX}/{run_id}/state.json"


def artifact_key(run_id: str, name: str) -> str:
    """Where a run's report files live in the storage."""
    return f"{DR_PREFIX}/{run_id}/{name}"


LAST_DRILL_KEY = f"{DR_PREFIX}/last-drill.json"


class RunStore:
    """Reads and writes runs: Redis first, the storage as the durable copy."""

    def __init__(self, client: redis.Redis, store: Store, prefix: str) -> None:
        self.client = client
        self.store = store
        self.prefix = prefix
        self.log = structlog.get_logger("kosmos.dr")

    def key(self, *parts: str) -> str:
        """A key under this deployment's prefix."""
        return ":".join((self.prefix, "dr", *parts))

    # -- reading ---------------------------------------------------------------------------

    def load(self, run_id: str) -> RunState:
        """The run from Redis; NotFoundError (pointing at resume) when Redis lost it."""
        raw = self.client.get(self.key("run", run_id))
        if raw is None:
            raise NotFoundError(
                f"run {run_id} is not in Redis",
                hint="restore it from storage:",
                see=("dr", "resume", run_id),
            )
        return _parse(raw, f"run {run_id} in Redis")

    def load_stored(self, run_id: str) -> RunState:
        """The run's durable copy from the storage."""
        try:
            raw = self.store.get_bytes(state_key(run_id))
        except NotFoundError:
            raise NotFoundError(
                f"no run {run_id} in {self.store.describe()}", see=("dr", "status")
            ) from None
        return _parse(raw, f"{state_key(run_id)}")

    def exists(self, run_id: str) -> bool:
        """Whether Redis holds the run."""
        return bool(self.client.exists(self.key("run", run_id)))

    def active(self, channel: str) -> str | None:
        """The run now bound to ``channel`` (the latest one started there)."""
        raw = self.client.get(self.key("channel", channel))
        return raw.decode() if isinstance(raw, bytes) else raw

    def recent(self, limit: int = 10) -> list[RunState]:
        """The newest runs in Redis first."""
        ids = self.client.zrevrange(self.key("runs"), 0, max(0, limit - 1))
        found = []
        for raw_id in ids:
            run_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            if self.exists(run_id):
                found.append(self.load(run_id))
        return found

    # -- writing ---------------------------------------------------------------------------

    def create(self, state: RunState) -> RunState:
        """Store a new run; ConflictError when the id is taken."""
        data = state.model_dump_json()
        if not self.client.set(self.key("run", state.run_id), data, nx=True):
            raise ConflictError(f"run id {state.run_id} is taken")
        with self.client.pipeline() as pipe:
            pipe.zadd(self.key("runs"), {state.run_id: state.started_at.timestamp()})
            if state.chat.channel:
                pipe.set(self.key("channel", state.chat.channel), state.run_id)
            pipe.execute()
        self._write_through(state)
        return state

    def update(self, run_id: str, change: Callable[[RunState], T]) -> tuple[RunState, T]:
        """Apply ``change`` to the run under its lock; store it in Redis and the storage.

        When ``change`` raises, nothing is written and the error propagates.
        """
        lock = self.client.lock(
            self.key("lock", run_id), timeout=LOCK_TIMEOUT, blocking_timeout=LOCK_WAIT
        )
        if not lock.acquire():
            raise ConflictError(
                f"run {run_id} is being changed by another process", hint="try again"
            )
        try:
            state = self.load(run_id)
            result = change(state)
            state.version += 1
            self.client.set(self.key("run", run_id), state.model_dump_json())
            self._write_through(state)
            return state, result
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                self.log.warning("run lock expired before release", run_id=run_id)

    def restore(self, run_id: str) -> RunState:
        """Bring the storage copy back into Redis unless Redis holds a newer one."""
        stored = self.load_stored(run_id)
        if self.exists(run_id):
            current = self.load(run_id)
            if current.version >= stored.version:
                return current
        self.client.set(self.key("run", run_id), stored.model_dump_json())
        with self.client.pipeline() as pipe:
            pipe.zadd(self.key("runs"), {run_id: stored.started_at.timestamp()})
            if stored.chat.channel and not stored.finished:
                pipe.set(self.key("channel", stored.chat.channel), run_id)
            pipe.execute()
        self.log.info("run restored from storage", run_id=run_id, version=stored.version)
        return stored

    def put_artifact(self, run_id: str, name: str, data: bytes) -> str:
        """Store a report file beside the run's state; return its key."""
        key = artifact_key(run_id, name)
        self.store.put_bytes(key, data)
        return key

    def artifact(self, run_id: str, name: str) -> bytes:
        """A stored report file."""
        return self.store.get_bytes(artifact_key(run_id, name))

    # -- drills ----------------------------------------------------------------------------

    def save_last_drill(self, summary: dict[str, Any]) -> None:
        """Remember the last finished drill in Redis and the storage."""
        data = json.dumps(summary, sort_keys=True, default=str)
        self.client.set(self.key("last-drill"), data)
        try:
            self.store.put_bytes(LAST_DRILL_KEY, data.encode())
        except StorageError as exc:
            self.log.warning("last drill not written to storage", error=exc.message)

    def last_drill(self) -> dict[str, Any] | None:
        """The last finished drill's summary (Redis, else the storage), or None."""
        try:
            raw = self.client.get(self.key("last-drill"))
        except redis.RedisError:
            raw = None  # the board still shows the drill when Redis is away: read the storage
        if raw is None:
            # Redis lost it (or no drill ran yet): read the storage once, then remember the
            # answer for a while, so a status board never waits on the storage for it.
            try:
                raw = self.store.get_bytes(LAST_DRILL_KEY)
            except NotFoundError:
                raw = b"null"
            with contextlib.suppress(redis.RedisError):
                self.client.set(self.key("last-drill"), raw, ex=LAST_DRILL_CACHE)
        loaded: dict[str, Any] | None = json.loads(raw)
        return loaded

    def _write_through(self, state: RunState) -> None:
        # The run goes on when the storage blinks: Redis holds it, the next change retries.
        try:
            self.store.put_bytes(state_key(state.run_id), state.model_dump_json(indent=1).encode())
        except StorageError as exc:
            self.log.warning("run state not written to storage", run_id=state.run_id, error=exc)


def _parse(raw: bytes | str, where: str) -> RunState:
    try:
        return RunState.model_validate_json(raw)
    except ValidationError as exc:
        raise IntegrityError(f"{where} is malformed: {exc.errors()[0]['msg']}") from None
