"""Catalog indexes held briefly in the bot's memory, so a busy channel never queues on storage.

``/backup status`` reads every component's index; parsing a large one (thousands of backups)
on every command would put Slack's 3-second budget at the mercy of the store and of the
other commands waiting behind it. Each index is read at most once per ``ttl``; an expired
one is still served while one background read refreshes it (and re-parses it only when the
stored index changed), and only a component never read before waits for storage.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import structlog

from workers.components import has_engine, index_version, reachability
from workers.context import Context
from workers.core.catalog import ComponentStatus, component_status
from workers.core.manifest import BackupSummary, CatalogIndex

TTL_SECONDS = 5.0
STATUS_SECONDS = 1.0
"""A component's computed status is reused this long (ages are shown in minutes anyway)."""
REACH_SECONDS = 10.0
"""A component's reachability probe is reused this long (a dead host costs a connect timeout)."""


@dataclass
class _Slot:
    index: CatalogIndex | None = None
    read_at: float = 0.0
    refreshing: bool = False
    version: tuple[int, str] | None = None
    status: ComponentStatus | None = None
    status_of: CatalogIndex | None = None
    status_at: float = 0.0
    reach: str | None = None
    reach_at: float | None = None
    probing: bool = False


class CatalogCache:
    """Per-component indexes, refreshed at most every ``ttl`` seconds."""

    def __init__(
        self,
        ctx: Context,
        background: Executor,
        ttl: float = TTL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx = ctx
        self.background = background
        self.ttl = ttl
        self.monotonic = monotonic
        self._slots: dict[str, _Slot] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def index(self, component: str) -> CatalogIndex:
        """The component's index: cached, stale while refreshing, or read now if never read."""
        with self._guard:
            slot = self._slots.setdefault(component, _Slot())
            lock = self._locks.setdefault(component, threading.Lock())
            index, age = slot.index, self.monotonic() - slot.read_at
            refresh = index is not None and age >= self.ttl and not slot.refreshing
            if refresh:
                slot.refreshing = True
        if refresh:
            self.background.submit(self._refresh, component, lock)
        if index is not None:
            return index
        with lock:  # one read for all the commands waiting on a component never read
            if slot.index is None:
                self._read(component, slot)
            assert slot.index is not None
            return slot.index

    def warm(self, component: str | None = None) -> bool:
        """Whether answering for ``component`` (or all) needs no read from storage."""
        names = [component] if component else list(self.ctx.settings.components)
        with self._guard:
            return all(
                name in self._slots and self._slots[name].index is not None for name in names
            )

    def status(self, component: str | None = None) -> list[ComponentStatus]:
        """What ``engine.status`` answers, from the cached indexes."""
        from workers.components import require_component

        settings = self.ctx.settings
        names = [require_component(self.ctx, component)] if component else list(settings.components)
        return [self._status(name) for name in names]

    def _status(self, component: str) -> ComponentStatus:
        index = self.index(component)
        slot = self._slots.get(component) or _Slot()
        moment = self.monotonic()
        computed = slot.status
        if (
            computed is None
            or slot.status_of is not index
            or moment - slot.status_at > STATUS_SECONDS
        ):
            # A large index takes milliseconds to evaluate; a busy channel needs it once a second.
            computed = component_status(
                self.ctx.settings,
                component,
                index,
                self.ctx.clock(),
                built=has_engine(self.ctx.settings.component(component).kind),
                unreachable=self._reach(component, slot, moment),
            )
            slot.status, slot.status_of, slot.status_at = computed, index, moment
        return computed

    def _reach(self, component: str, slot: _Slot, moment: float) -> str | None:
        if slot.reach_at is None:  # never probed: this answer waits for it (at most a timeout)
            slot.reach, slot.reach_at = reachability(self.ctx, component), moment
        elif moment - slot.reach_at > REACH_SECONDS and not slot.probing:
            slot.probing = True  # stale: answer with the last result, probe again meanwhile
            self.background.submit(self._probe, component, slot)
        return slot.reach

    def _probe(self, component: str, slot: _Slot) -> None:
        try:
            slot.reach = reachability(self.ctx, component)
        except Exception as exc:  # noqa: BLE001 - a failed probe keeps the last answer
            structlog.get_logger().warning("probe failed", component=component, error=str(exc))
        finally:
            slot.reach_at, slot.probing = self.monotonic(), False

    def backups(self, component: str) -> list[BackupSummary]:
        """What ``engine.list_backups`` answers: newest first, from the cached index."""
        from workers.components import require_component

        return list(reversed(self.index(require_component(self.ctx, component)).backups))

    def forget(self, component: str | None = None) -> None:
        """Drop one component's index (or all), so the next command reads storage."""
        with self._guard:
            for name in [component] if component else list(self._slots):
                self._slots.pop(name, None)

    def _refresh(self, component: str, lock: threading.Lock) -> None:
        with self._guard:
            slot = self._slots.get(component)
        try:
            if slot is not None:
                with lock:
                    self._read(component, slot)
        except Exception as exc:  # noqa: BLE001 - a failed refresh keeps serving the last index
            structlog.get_logger().warning(
                "catalog refresh failed", component=component, error=str(exc)
            )
        finally:
            if slot is not None:
                slot.refreshing = False

    def _read(self, component: str, slot: _Slot) -> None:
        version = self._version(component)
        if slot.index is not None and version is not None and version == slot.version:
            slot.read_at = self.monotonic()  # unchanged: no download, no parse
            return
        index = self.ctx.repo.index(component)
        slot.index, slot.read_at, slot.version = index, self.monotonic(), version
        # A large index is tens of thousands of long-lived objects: left to the collector,
        # every full collection walks them all (tens of ms, in the middle of some command).
        gc.freeze()

    def _version(self, component: str) -> tuple[int, str] | None:
        """Size and modification time of the stored index: one listing, not a download."""
        return index_version(self.ctx, component)
