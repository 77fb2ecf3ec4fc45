"""Prometheus metrics, computed at scrape time from the catalog and Redis.

Nothing is counted in process memory: every worker (and the bot) serving ``--metrics-port``
reads the same catalog and the same Redis counters, so they all report the same values.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from rq import Queue

from workers import engine
from workers.context import Context
from workers.core.catalog import ComponentStatus
from workers.core.errors import KosmosError
from workers.core.rpo import wal_archive_lag
from workers.queues import all_queues
from workers.state.redis_state import RedisState

CATALOG_CACHE_SECONDS = 15.0
"""Scrapes within this long reuse one catalog read: status reads an index per component."""


class BackupCollector(Collector):
    """Yields the kosmos_backup_* metric families on every scrape."""

    def __init__(self, ctx: Context, cache_seconds: float = CATALOG_CACHE_SECONDS) -> None:
        self.ctx = ctx
        self.state = RedisState(ctx.redis, ctx.settings.redis.key_prefix)
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, list[ComponentStatus]] | None = None

    def collect(self) -> Iterator[Metric]:
        """Catalog metrics per component, then queue and job metrics."""
        statuses = self._statuses()
        up = GaugeMetricFamily(
            "kosmos_backup_catalog_up", "Whether the last catalog read succeeded."
        )
        up.add_metric([], 0 if statuses is None else 1)
        yield up
        if statuses is not None:
            yield from self._catalog_metrics(statuses)
        yield from self._redis_metrics()

    def _statuses(self) -> list[ComponentStatus] | None:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            try:
                statuses = engine.status(self.ctx)
            except KosmosError as exc:
                structlog.get_logger("kosmos.metrics").warning(
                    "catalog unreadable", error=exc.message
                )
                return None
            self._cached = (time.monotonic(), statuses)
            return statuses

    def _catalog_metrics(self, statuses: list[ComponentStatus]) -> Iterator[Metric]:
        labels = ["component"]
        success = GaugeMetricFamily(
            "kosmos_backup_last_success_timestamp_seconds",
            "Unix time the last good backup finished.",
            labels=labels,
        )
        duration = GaugeMetricFamily(
            "kosmos_backup_last_duration_seconds",
            "Wall time of the last good backup.",
            labels=labels,
        )
        size = GaugeMetricFamily(
            "kosmos_backup_last_size_bytes", "Stored bytes of the last good backup.", labels=labels
        )
        breached = GaugeMetricFamily(
            "kosmos_backup_rpo_breached",
            "1 when the recovery point is older than the RPO.",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            "kosmos_backup_wal_archive_lag_seconds",
            "Seconds since the newest archived WAL segment.",
            labels=labels,
        )
        built = GaugeMetricFamily(
            "kosmos_backup_engine_built",
            "1 when the component's engine exists; 0 means not built yet (never scheduled).",
            labels=labels,
        )
        reachable = GaugeMetricFamily(
            "kosmos_backup_source_reachable",
            "1 when the component's source answered the last probe.",
            labels=labels,
        )
        now = self.ctx.clock()
        for status in statuses:
            last = status.last_backup
            if last is not None:
                success.add_metric([status.name], last.finished_at.timestamp())
                seconds = (last.finished_at - last.started_at).total_seconds()
                duration.add_metric([status.name], seconds)
                size.add_metric([status.name], last.size)
            breached.add_metric([status.name], 1 if status.rpo_breached else 0)
            built.add_metric([status.name], 1 if status.built else 0)
            if status.built and status.enabled:
                reachable.add_metric([status.name], 0 if status.unreachable else 1)
            wal = wal_archive_lag(status, now)
            if wal is not None:
                lag.add_metric([status.name], wal)
        yield from (success, duration, size, breached, lag, built, reachable)

    def _redis_metrics(self) -> Iterator[Metric]:
        failures = CounterMetricFamily(
            "kosmos_backup_failures", "Failed backups since records began.", labels=["component"]
        )
        totals = self.state.failures_total()
        for name in self.ctx.settings.components:
            failures.add_metric([name], totals.get(name, 0))
        yield failures
        jobs = CounterMetricFamily(
            "kosmos_backup_jobs", "Jobs ended, by kind and outcome.", labels=["kind", "outcome"]
        )
        for key, count in sorted(self.state.job_totals().items()):
            kind, _, outcome = key.partition(":")
            jobs.add_metric([kind, outcome], count)
        yield jobs
        yield from self._queue_metrics()

    def _queue_metrics(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "kosmos_backup_queue_depth", "Jobs waiting in each queue.", labels=["queue"]
        )
        registries = GaugeMetricFamily(
            "kosmos_backup_queue_jobs", "Jobs by queue and RQ state.", labels=["queue", "state"]
        )
        for name in all_queues(self.ctx.settings):
            queue = Queue(self.ctx.settings.rq_queue(name), connection=self.ctx.redis)
            depth.add_metric([name], queue.count)
            counts: dict[str, Any] = {
                "started": queue.started_job_registry,
                "scheduled": queue.scheduled_job_registry,
                "deferred": queue.deferred_job_registry,
                "failed": queue.failed_job_registry,
                "finished": queue.finished_job_registry,
            }
            for state, registry in counts.items():
                # No cleanup: a scrape must only read (RQ's cleanup may requeue jobs).
                registries.add_metric([name, state], registry.get_job_count(cleanup=False))
        yield depth
        yield registries
        running = GaugeMetricFamily(
            "kosmos_backup_operations_running", "Operations with a live heartbeat."
        )
        running.add_metric([], self.ctx.redis.zcard(self.state.key("running")))
        yield running


def build_registry(ctx: Context) -> CollectorRegistry:
    """A registry holding only our collector (no process metrics of one worker)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BackupCollector(ctx))
    return registry


def serve_metrics(ctx: Context, port: int, addr: str = "0.0.0.0") -> CollectorRegistry:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread; return the registry."""
    registry = build_registry(ctx)
    start_http_server(port, addr=addr, registry=registry)
    return registry
