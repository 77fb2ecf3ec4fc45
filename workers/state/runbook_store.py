"""Runbook runs in Redis, written through to the backup storage after every change.

In a disaster Redis may be what was lost, so every change of a run is also stored as
``_dr/<run-id>/state.json`` beside the backups; :meth:`RunStore.restore` brings it back. A
*durable* change (a step's outcome, a claim on what a step creates) is applied to the newer
of the two copies, so a step that ends while Redis is gone or came back older still counts.
Keys under the prefix ``P``::

    P:dr:run:<id>          the run's state (JSON)
    P:dr:runs              sorted set of run ids by start time
    P:dr:channel:<place>   the current run of a channel (or of the console: ``console``)
    P:dr:last-drill        summary of the last finished drill (JSON; also _dr/last-drill.json)
    P:dr:lock:<id>         a short lock around each read-modify-write of a run
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from pydantic import ValidationError

from workers.core.errors import ConflictError, IntegrityError, NotFoundError, StorageError
from workers.core.ports import Store

if TYPE_CHECKING:
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

    @property
    def log(self) -> Any:
        """The DR log; structlog is imported on the first line (status reads without it)."""
        import structlog

        return structlog.get_logger("kosmos.dr")

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

    def active(self, place: str) -> str | None:
        """The run now bound to a channel or the console (the latest one started there)."""
        raw = self.client.get(self.key("channel", place))
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
            if state.chat.place:
                pipe.set(self.key("channel", state.chat.place), state.run_id)
            pipe.execute()
        self._write_through(state)
        return state

    def update(
        self,
        run_id: str,
        change: Callable[[RunState], T],
        *,
        durable: bool = False,
        strict: bool = False,
    ) -> tuple[RunState, T]:
        """Apply ``change`` to the run under its lock; store it in Redis and the storage.

        ``durable`` is for changes that must outlive a lost Redis (a step's outcome, a claim
        on a resource): the newer of the two copies is changed, the storage's when Redis lost
        the run or came back older, and the run is put back into Redis. ``strict`` raises
        when the storage cannot take the change, instead of letting it lag behind Redis.
        When ``change`` raises, nothing is written and the error propagates.
        """
        with self._locked(run_id):
            state = self._newest(run_id) if durable else self.load(run_id)
            result = change(state)
            state.version += 1
            if strict:  # the storage first: a change it refused must not linger in Redis
                self._write_through(state, strict=True)
            self.client.set(self.key("run", run_id), state.model_dump_json())
            if not strict:
                self._write_through(state)
            return state, result

    def restore(self, run_id: str) -> RunState:
        """Bring the storage copy back into Redis unless Redis holds a newer one."""
        with self._locked(run_id):
            return self._newest(run_id, required=True)

    def newest(self, run_id: str) -> RunState:
        """The newer of the two copies, put back in Redis; Redis's if the storage is down."""
        with self._locked(run_id):
            return self._newest(run_id)

    @contextlib.contextmanager
    def _locked(self, run_id: str) -> Iterator[None]:
        lock = self.client.lock(
            self.key("lock", run_id), timeout=LOCK_TIMEOUT, blocking_timeout=LOCK_WAIT
        )
        if not lock.acquire():
            raise ConflictError(
                f"run {run_id} is being changed by another process", hint="try again"
            )
        try:
            yield
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                self.log.warning("run lock expired before release", run_id=run_id)

    def _newest(self, run_id: str, *, required: bool = False) -> RunState:
        """The newer of Redis's and the storage's copies; the storage's is put back in Redis.

        Redis may have been flushed, or restarted from an older snapshot, while a step ran:
        the storage then holds the newer run. When the storage cannot be read, Redis's copy
        serves (``required``: the storage copy is what was asked for, so its error raises).
        """
        cached = self.load(run_id) if self.exists(run_id) else None
        try:
            stored = self.load_stored(run_id)
        except (StorageError, NotFoundError) as exc:
            if cached is None or required:
                raise
            self.log.warning("run state not read from storage", run_id=run_id, error=exc.message)
            return cached
        if cached is not None and cached.version >= stored.version:
            return cached
        self._reinstate(stored)
        self.log.info(
            "run restored from storage",
            run_id=run_id,
            version=stored.version,
            redis="lost it" if cached is None else f"held version {cached.version}",
        )
        return stored

    def _reinstate(self, state: RunState) -> None:
        with self.client.pipeline() as pipe:
            pipe.set(self.key("run", state.run_id), state.model_dump_json())
            pipe.zadd(self.key("runs"), {state.run_id: state.started_at.timestamp()})
            if state.chat.place and not state.finished:
                pipe.set(self.key("channel", state.chat.place), state.run_id)
            pipe.execute()

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

    def _write_through(self, state: RunState, *, strict: bool = False) -> None:
        # The run goes on when the storage blinks: Redis holds it, the next change retries.
        try:
            self.store.put_bytes(state_key(state.run_id), state.model_dump_json(indent=1).encode())
        except StorageError as exc:
            if strict:
                raise
            self.log.warning("run state not written to storage", run_id=state.run_id, error=exc)


def _parse(raw: bytes | str, where: str) -> RunState:
    # Imported here: the last drill is read (status) without the runbook models.
    from workers.core.runbook_run import RunState

    try:
        return RunState.model_validate_json(raw)
    except ValidationError as exc:
        raise IntegrityError(f"{where} is malformed: {exc.errors()[0]['msg']}") from None
