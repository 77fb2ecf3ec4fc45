"""Serving the Slack app: HTTP through a WSGI application under gunicorn, or Socket Mode.

Bolt's own ``App.start()`` server is for development only; HTTP mode here is gunicorn with
``gthread`` workers (two processes by default, so one busy interpreter never holds every
request) running a WSGI application that routes ``/slack/events`` through the gate
(``bot/gate.py``: framing, signature, parsing) to Bolt and answers ``/healthz``. Each
serving process also runs one relay consumer in a thread.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from slack_bolt import App

from bot.metrics import BotMetrics, forget_process, serve_multiprocess
from bot.relays.operations import Relay
from bot.relays.restore_cards import start_card_keeper
from bot.relays.runbook_board import start_dr_board
from bot.slack.app import create_app, relay_client, web_client
from bot.slack.gate import Gate
from workers.context import Context
from workers.core.config import Settings
from workers.core.errors import ConfigError

EVENTS_PATH = "/slack/events"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class ServeOptions:
    """How the HTTP server runs."""

    port: int = 3000
    host: str = "0.0.0.0"
    workers: int = 2
    threads: int = 16
    relay: bool = True
    metrics_port: int | None = None


def wsgi_application(app: App, signing_secret: str) -> WsgiApp:
    """A WSGI app: ``POST /slack/events`` through the gate to Bolt, ``GET /healthz``, else 404."""
    bolt = Gate(app, signing_secret)

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == EVENTS_PATH:
            return bolt(environ, start_response)
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return application


def consumer_name() -> str:
    """This process's relay consumer name: host and pid (unique among replicas)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def start_relay(settings: Settings, ctx: Context, metrics: BotMetrics | None = None) -> Relay:
    """Run the relay for this process in a daemon thread, and the runbook boards' relay.

    Both wait out 429s themselves. The operations relay also decides itself what to do
    after a connection error, since Slack may have taken the post (it looks first).
    """
    client = relay_client(settings)
    relay = Relay(settings, ctx.redis, client, consumer=consumer_name(), metrics=metrics)
    threading.Thread(target=relay.run, name="kb-relay", daemon=True).start()
    boards = web_client(settings, retry_rate_limits=False)
    start_dr_board(ctx, boards, consumer_name())  # runbook boards: their own consumer group
    return relay


def serve_http(settings: Settings, options: ServeOptions) -> None:
    """Serve Slack's HTTP requests under gunicorn until stopped."""
    http_signing_secret(settings)
    from gunicorn.app.base import BaseApplication

    if options.metrics_port and not os.environ.get(MULTIPROC_ENV):
        # Set before any process imports prometheus_client: every worker writes its samples
        # here and the master serves their sum.
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="kosmos-bot-metrics-")

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{options.host}:{options.port}")
            self.cfg.set("workers", options.workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", options.threads)
            self.cfg.set("timeout", 30)
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("keepalive", 5)
            self.cfg.set("backlog", 256)
            self.cfg.set("accesslog", None)
            if "control_socket_disable" in self.cfg.settings:
                # gunicorn >= 24 opens a control socket at one fixed path per user:
                # two bots on one host would fight over it, and we never use it.
                self.cfg.set("control_socket_disable", True)
            if options.metrics_port:
                port = options.metrics_port
                self.cfg.set("when_ready", lambda _arbiter: serve_multiprocess(port))
                self.cfg.set("child_exit", lambda _arbiter, worker: forget_process(worker.pid))

        def load(self) -> WsgiApp:
            # Runs in the worker after fork: clients and threads belong to this process.
            return build_process(settings, options)

    Server().run()


def build_process(settings: Settings, options: ServeOptions) -> WsgiApp:
    """Everything one serving process holds: the app, its relay and its metrics endpoint."""
    ctx = Context(settings)
    client = web_client(settings)
    metrics = BotMetrics.create()
    app = create_app(settings, ctx, client, metrics=metrics)
    start_card_keeper(ctx, client)
    if options.relay:
        start_relay(settings, ctx, metrics)
    structlog.get_logger().info("bot serving", mode="http", port=options.port)
    return wsgi_application(app, http_signing_secret(settings))


def http_signing_secret(settings: Settings) -> str:
    """The secret every HTTP request must be signed with; HTTP mode needs it and a bot token."""
    secret = settings.slack.signing_secret
    if secret is None or settings.slack.bot_token is None:
        raise ConfigError(
            "HTTP mode needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET",
            hint="or run `kosmos-backup bot --console` without Slack",
        )
    return secret.get_secret_value()


def serve_socket_mode(settings: Settings, metrics_port: int | None = None) -> None:
    """Connect over Socket Mode (SLACK_APP_TOKEN) and answer until interrupted."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    token = settings.slack.app_token
    if token is None or settings.slack.bot_token is None:
        raise ConfigError("Socket Mode needs SLACK_APP_TOKEN and SLACK_BOT_TOKEN")
    ctx = Context(settings)
    client = web_client(settings)
    metrics = BotMetrics.create()
    app = create_app(settings, ctx, client, socket_mode=True, metrics=metrics)
    start_card_keeper(ctx, client)
    start_relay(settings, ctx, metrics)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    handler = SocketModeHandler(app, token.get_secret_value())
    handler.connect()
    structlog.get_logger().info("bot serving", mode="socket")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        handler.close()
