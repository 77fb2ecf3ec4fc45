"""The bot's Prometheus metrics: commands answered, how fast, and what the relay asked of Slack.

Built once per serving process and handed to the app and the relay. Under gunicorn with
several workers, ``PROMETHEUS_MULTIPROC_DIR`` is set before any worker starts and the
master serves the sum of every worker's samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0)


@dataclass(frozen=True)
class BotMetrics:
    """Counters and histograms of one process."""

    commands: Any
    ack_seconds: Any
    slack_calls: Any

    @classmethod
    def create(cls, registry: Any = None) -> BotMetrics:
        """Register the metrics in ``registry`` (default: the process's global one)."""
        from prometheus_client import REGISTRY, Counter, Histogram

        target = registry if registry is not None else REGISTRY
        return cls(
            commands=Counter(
                "kosmos_bot_commands_total",
                "Chat commands answered, by command and outcome",
                ["command", "outcome"],
                registry=target,
            ),
            ack_seconds=Histogram(
                "kosmos_bot_ack_seconds",
                "Time from a command's arrival to its acknowledgement",
                buckets=ACK_BUCKETS,
                registry=target,
            ),
            slack_calls=Counter(
                "kosmos_bot_relay_slack_calls_total",
                "Web API calls made by the relay, by method and outcome",
                ["method", "outcome"],
                registry=target,
            ),
        )


def serve_multiprocess(port: int, addr: str = "0.0.0.0") -> None:
    """Serve /metrics summed over every process writing to ``PROMETHEUS_MULTIPROC_DIR``."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=addr, registry=registry)


def forget_process(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay in the sums)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
