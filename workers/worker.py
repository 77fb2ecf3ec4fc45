"""The worker process: an RQ worker on chosen queues, structured logs, optional metrics."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import structlog
from rq import Worker
from rq.job import Job
from rq.job_lifecycle import call_exception_handlers

from workers.context import Context
from workers.core.config import Settings
from workers.core.errors import KosmosError, UsageError
from workers.queues import all_queues

WORKER_TTL = 60
"""Seconds a silent worker stays registered; also bounds RQ's blocking dequeue (TTL - 15 s)."""
MAINTENANCE_INTERVAL = 60
"""RQ's own registry upkeep; its 10-minute default is too slow (our reaper is faster still)."""
JOB_MONITORING_INTERVAL = 10
PRELOAD = ("workers.jobs.dr", "workers.storage.store_s3", "workers.engines.postgres.logical")
"""Imported before forking: every work horse then starts warm instead of importing them."""


def configure_logging(level: str = "INFO", json_logs: bool | None = None) -> None:
    """Route structlog and stdlib logging (RQ's) through one renderer: JSON unless on a TTY."""
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer()
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if json_logs else _keep,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())


def _keep(
    logger: object, method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    return event


class KosmosWorker(Worker):
    """RQ's worker, minus the traceback for a failure the job already logged in one line."""

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        """Our own errors (a server away, a bad setting) were reported; keep tracebacks for bugs."""
        if isinstance(exc_info[1], KosmosError):
            call_exception_handlers(self._exc_handlers, job, *exc_info)
            return
        super().handle_exception(job, *exc_info)


def run_worker(
    settings: Settings,
    queue_names: Sequence[str],
    *,
    burst: bool = False,
    metrics_port: int | None = None,
    metrics_addr: str = "0.0.0.0",
    name: str | None = None,
) -> bool:
    """Work the queues until stopped (or, ``burst``, until they are empty)."""
    if not queue_names:
        raise UsageError("a worker needs at least one queue", hint="--queues kosmos-default")
    log = structlog.get_logger("kosmos.worker")
    known = set(all_queues(settings))
    for queue in queue_names:
        if queue not in known:
            log.warning("no component routes work to this queue", queue=queue, known=sorted(known))
    ctx = Context(settings)
    if metrics_port is not None:
        from workers.adapters.metrics import serve_metrics

        serve_metrics(ctx, metrics_port, metrics_addr)
        log.info("metrics served", port=metrics_port)
    for module in PRELOAD:
        importlib.import_module(module)
    worker = KosmosWorker(
        [settings.rq_queue(queue) for queue in queue_names],
        connection=ctx.redis,
        name=name,
        worker_ttl=WORKER_TTL,
        maintenance_interval=MAINTENANCE_INTERVAL,
        job_monitoring_interval=JOB_MONITORING_INTERVAL,
    )
    return bool(worker.work(burst=burst, with_scheduler=True, logging_level=None))
