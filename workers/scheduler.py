"""The scheduler: one elected leader enqueues due backups, upkeep jobs and the reaper's sweeps.

Due times come from the catalog (the last good backup), never from this process's memory,
so a restarted or newly elected scheduler catches a missed run up once. Several schedulers
may run; a Redis lease (TTL ``jobs.leader_ttl``, renewed every third of it) elects one, and a
standby takes over within about one TTL of the leader's death.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from workers import dr, engine, queues, restore_guard
from workers.context import Context
from workers.core.errors import KosmosError
from workers.core.events import ChatContext
from workers.core.operations import (
    BackupParams,
    OperationKind,
    OperationParams,
    OperationRequest,
    OperationState,
    PruneParams,
    RpoCheckParams,
    SweepParams,
)
from workers.core.schedule import backup_due, last_good, periodic_due
from workers.engines import engine_for
from workers.jobs.maintenance import reap_abandoned
from workers.state.redis_state import Heartbeat, RedisState

LEADER_LEASE = "scheduler:leader"
_ACTIVE_OPS = {OperationState.QUEUED.value, OperationState.RUNNING.value}
_ACTIVE_JOBS = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


@dataclass
class TickReport:
    """What one tick did."""

    enqueued: list[str] = field(default_factory=list)
    reaped: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


class Scheduler:
    """Enqueues work when it is due; acts only while it holds the leader lease."""

    def __init__(self, ctx: Context, identity: str | None = None) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.state = RedisState(ctx.redis, ctx.settings.redis.key_prefix)
        self.identity = identity or (
            f"scheduler@{socket.gethostname()}:{os.getpid()}-{secrets.token_hex(2)}"
        )
        self.log = structlog.get_logger("kosmos.scheduler").bind(scheduler=self.identity)
        self._leading = threading.Event()

    @property
    def leading(self) -> bool:
        """Whether this scheduler holds the leader lease."""
        return self._leading.is_set()

    # -- leadership ----------------------------------------------------------------------------

    def hold_leadership(self) -> None:
        """Take the leader lease, or renew it; notice losing it."""
        ttl = self.settings.jobs.leader_ttl
        if self.leading:
            if not self.state.renew(LEADER_LEASE, self.identity, ttl):
                self._leading.clear()
                self.log.warning("lost the leader lease")
        elif self.state.acquire(LEADER_LEASE, self.identity, ttl) is None:
            self._leading.set()
            self.log.info("leading")
            self.state.log_scheduler(self.identity, "leading", self.ctx.clock())

    def run(self, stop: threading.Event | None = None) -> None:
        """Lead or stand by until ``stop`` is set; tick every ``jobs.scheduler_tick`` as leader."""
        stop = stop or threading.Event()
        jobs = self.settings.jobs
        lease = Heartbeat(self.hold_leadership, jobs.leader_ttl / 3, name="scheduler-lease")
        lease.start()
        self.log.info("scheduler started", leading=self.leading)
        next_tick = 0.0
        try:
            while not stop.is_set():
                if self.leading and time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + jobs.scheduler_tick.total_seconds()
                    self._safe_tick()
                stop.wait(min(0.5, jobs.scheduler_tick.total_seconds()))
        finally:
            lease.stop()
            if self.state.release(LEADER_LEASE, self.identity):
                self.log.info("leader lease released")

    def once(self) -> TickReport | None:
        """One tick if this scheduler can lead now (None when another one leads)."""
        self.hold_leadership()
        if not self.leading:
            return None
        try:
            return self.tick()
        finally:
            self.state.release(LEADER_LEASE, self.identity)
            self._leading.clear()

    def _safe_tick(self) -> None:
        try:
            report = self.tick()
        except Exception:  # noqa: BLE001 - the loop outlives one bad tick (Redis or S3 blip)
            self.log.exception("scheduler tick failed")
            return
        if report.enqueued or report.reaped:
            self.log.info("tick", enqueued=report.enqueued, reaped=report.reaped)

    # -- one tick ------------------------------------------------------------------------------

    def tick(self) -> TickReport:
        """Reap abandoned work, enqueue due backups, then due upkeep."""
        report = TickReport()
        self._reap(report)
        for name, component in self.settings.components.items():
            if not component.enabled:
                continue
            if not engine.has_engine(component.kind):
                # Configured and on the status board, but nothing can run it yet: enqueueing
                # would only fail every hour and bury real failures.
                report.skipped[f"backup:{name}"] = "no engine yet"
                continue
            for base in engine_for(component.kind).backup_tracks(component):
                if not self.leading:
                    return report
                self._maybe_backup(name, base, report)
        self._upkeep(report)
        dr.upkeep(self.ctx)  # runbook runs: resume lost steps, start the monthly drill
        restore_guard.upkeep(self.ctx)  # approvals: expiry, break-glass nags, audit export
        return report

    def _reap(self, report: TickReport) -> None:
        for record in reap_abandoned(self.ctx, self.state):
            report.reaped.append(record["op_id"])
            self._record(f"reaped {record['op_id']} ({record.get('worker', '?')})")
            component = record.get("component") or None
            if record.get("kind") != OperationKind.BACKUP.value or component is None:
                continue  # only backups upload; nothing partial to sweep
            # The dead backup's lock is handed straight to the sweep, so every upload under
            # the component that started before now belongs to the dead job.
            sweep = self._request(
                OperationKind.SWEEP,
                component,
                SweepParams(before=self.ctx.clock(), after_op=record["op_id"]),
            )
            if not self.state.hand_over(
                component, record["op_id"], sweep.op_id, self.settings.jobs.lock_ttl
            ):
                self.log.warning("dead backup's lock had lapsed", component=component)
            report.enqueued.append(queues.submit(self.ctx.redis, self.settings, sweep))

    def _maybe_backup(self, name: str, base: bool, report: TickReport) -> None:
        track = f"backup:{name}{':base' if base else ''}"
        if self.state.holder(name) is not None:
            report.skipped[track] = "locked"
            return
        component = self.settings.component(name)
        try:
            index = self.ctx.repo.index(name)
        except KosmosError as exc:
            report.skipped[track] = f"catalog unreadable: {exc.message}"
            return
        attempt = self.state.last_attempt(track)
        frequency = (
            getattr(component, "base_frequency", component.frequency)
            if base
            else component.frequency
        )
        due = backup_due(
            last_good(index, base=base),
            frequency,
            self.ctx.clock(),
            last_attempt=attempt[1] if attempt else None,
            in_flight=self._in_flight(attempt[0]) if attempt else False,
            retry_after=self.settings.jobs.failure_retry_after,
        )
        if not due.due:
            report.skipped[track] = due.reason
            return
        op_id = self._submit(OperationKind.BACKUP, name, BackupParams(base=base))
        self.state.set_last_attempt(track, op_id, self.ctx.clock())
        self._record(f"enqueued {track} {op_id}: {due.reason}")
        report.enqueued.append(op_id)

    def _upkeep(self, report: TickReport) -> None:
        jobs = self.settings.jobs
        tasks: list[tuple[OperationKind, timedelta, OperationParams]] = [
            (OperationKind.RPO_CHECK, jobs.monitor_interval, RpoCheckParams(quiet=True)),
            (OperationKind.PRUNE, jobs.prune_interval, PruneParams()),
            (OperationKind.SWEEP, jobs.sweep_interval, SweepParams()),
        ]
        now = self.ctx.clock()
        for kind, interval, params in tasks:
            track = f"task:{kind.value}"
            attempt = self.state.last_attempt(track)
            if attempt and self._in_flight(attempt[0]):
                report.skipped[track] = "previous run still pending"
                continue
            if not periodic_due(attempt[1] if attempt else None, interval, now):
                continue
            if not self.leading:
                return
            op_id = self._submit(kind, None, params)
            self.state.set_last_attempt(track, op_id, now)
            self._record(f"enqueued {track} {op_id}")
            report.enqueued.append(op_id)

    # -- plumbing ------------------------------------------------------------------------------

    def _request(
        self, kind: OperationKind, component: str | None, params: OperationParams
    ) -> OperationRequest:
        return queues.new_request(
            kind,
            component,
            params=params,
            chat=ChatContext(source="scheduler", channel=self.settings.slack.channel),
            requested_by=self.identity,
            now=self.ctx.clock(),
        )

    def _submit(self, kind: OperationKind, component: str | None, params: OperationParams) -> str:
        request = self._request(kind, component, params)
        return queues.submit(self.ctx.redis, self.settings, request)

    def _in_flight(self, op_id: str) -> bool:
        record = self.state.operation(op_id)
        if record is not None:
            return record["state"] in _ACTIVE_OPS
        try:
            return Job.fetch(op_id, connection=self.ctx.redis).get_status() in _ACTIVE_JOBS
        except NoSuchJobError:
            return False

    def _record(self, action: str) -> None:
        self.state.log_scheduler(self.identity, action, self.ctx.clock())
