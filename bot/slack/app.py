"""The Slack app: a Bolt App built per process, answering every command within Slack's 3 s.

Listeners run before the response (``process_before_response``): a handler only parses,
authorizes, enqueues and answers, so the answer travels in the acknowledgement itself. The
error handler is the outer edge: a KosmosError becomes an ephemeral message, anything else
"internal error, operation <id>" plus a full log line.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import structlog
from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from bot.blocks import reply_messages
from bot.blocks.message import Message
from bot.blocks.operation import error_message, internal_error
from bot.handlers import Caller, Desk, dispatch
from bot.metrics import BotMetrics
from bot.roles import Authorizer, SlackGroups
from bot.slack import restore, runbook
from bot.slack.answer import Answers
from workers.context import Context
from workers.core.config import Settings
from workers.core.errors import ConfigError, KosmosError, PermissionDenied, UsageError
from workers.core.events import ChatContext
from workers.core.ids import new_operation_id

EVENT_SEEN_TTL = 3600
"""Seconds an Events API delivery id is remembered, so Slack's retries are acknowledged once."""
ANY_COMMAND = re.compile(r"^/.+")
STARTED = "kosmos_started"
_OUTCOMES = {UsageError: "usage", PermissionDenied: "refused"}


def web_client(
    settings: Settings, *, retry_rate_limits: bool = True, resend_on_connection_errors: bool = True
) -> WebClient:
    """A WebClient for the bot token, pointed at ``slack.api_url`` when set.

    slack_sdk sends a call again after a connection error, even one that came after Slack
    took the call; without ``resend_on_connection_errors`` the caller decides (the relay
    looks for its message before posting again).
    """
    slack = settings.slack
    token = slack.bot_token.get_secret_value() if slack.bot_token else None
    kwargs: dict[str, Any] = {"token": token, "timeout": 10}
    if slack.api_url:
        kwargs["base_url"] = slack.api_url.rstrip("/") + "/"
    client = WebClient(**kwargs)
    if not resend_on_connection_errors:
        client.retry_handlers[:] = [
            h for h in client.retry_handlers if not isinstance(h, ConnectionErrorRetryHandler)
        ]
    if retry_rate_limits:
        client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    return client


def relay_client(settings: Settings) -> WebClient:
    """The operations relay's client: the relay waits out 429s itself, and after a
    connection error looks for its message before it posts again."""
    return web_client(settings, retry_rate_limits=False, resend_on_connection_errors=False)


def create_app(
    settings: Settings,
    ctx: Context,
    client: WebClient | None = None,
    *,
    desk: Desk | None = None,
    socket_mode: bool = False,
    metrics: BotMetrics | None = None,
) -> App:
    """A Bolt App answering ``/backup`` (and every later command group) for this process."""
    secret = settings.slack.signing_secret
    if secret is None and not socket_mode:
        raise ConfigError(
            "the Slack app needs a signing secret in HTTP mode",
            hint="export SLACK_SIGNING_SECRET, or SLACK_APP_TOKEN for Socket Mode",
        )
    client = client or web_client(settings)
    app = App(
        client=client,
        signing_secret=secret.get_secret_value() if secret else "",
        request_verification_enabled=secret is not None,
        process_before_response=True,
        name="kosmos-backup",
    )
    desk = desk or Desk(ctx, Authorizer(settings.slack.roles, SlackGroups(client)))
    app.middleware(_retry_guard(ctx))
    answers = Answers(ctx.clock)
    on_command = _command_listener(desk, answers, metrics)
    # Bolt tries listeners in order, evaluating each one's matchers: the busiest command
    # comes first so `/backup status` never pays for the interactive listeners below.
    app.command("/backup")(on_command)
    restore.register(app, desk, client, answers)  # before the catch-all: it posts cards
    runbook.register(app, desk, client)
    app.command(ANY_COMMAND)(on_command)
    app.error(_error_handler(ctx, metrics))
    return app


def _command_listener(
    desk: Desk, answers: Answers, metrics: BotMetrics | None
) -> Callable[..., None]:
    def on_command(ack: Any, command: dict[str, Any], respond: Any, context: Any) -> None:
        user = command.get("user_id", "")
        caller = Caller(
            user=user,
            chat=ChatContext(
                source="slack",
                channel=command.get("channel_id"),
                user=user,
                response_url=command.get("response_url"),
            ),
            request_key=command.get("trigger_id"),
        )

        def work() -> list[Message]:
            reply = dispatch(desk, caller, command.get("command", ""), command.get("text") or "")
            return reply_messages(reply)

        answers.answer(ack, respond, work)
        _observe(metrics, context, command.get("command"), "ok")

    return on_command


def _error_handler(ctx: Context, metrics: BotMetrics | None) -> Callable[..., BoltResponse]:
    def on_error(error: Exception, body: dict[str, Any], request: Any) -> BoltResponse:
        log = structlog.get_logger()
        outcome = _OUTCOMES.get(type(error), "error") if isinstance(error, KosmosError) else "bug"
        _observe(metrics, request.context, body.get("command"), outcome)
        if isinstance(error, KosmosError):
            log.info("command refused", error=type(error).__name__, message=error.message)
            message = error_message(error)
        else:
            op_id = new_operation_id(ctx.clock())
            log.error(
                "internal error",
                operation=op_id,
                command=body.get("command"),
                exc_info=error,
            )
            message = internal_error(op_id)
        return BoltResponse(
            status=200,
            body=json.dumps({"response_type": "ephemeral", **message.payload()}),
            headers={"content-type": "application/json;charset=utf-8"},
        )

    return on_error


def _observe(metrics: BotMetrics | None, context: Any, command: Any, outcome: str) -> None:
    if metrics is None:
        return
    metrics.commands.labels(str(command or "other"), outcome).inc()
    started = context.get(STARTED) if context is not None else None
    if started is not None:
        metrics.ack_seconds.observe(time.monotonic() - started)


def _retry_guard(ctx: Context) -> Callable[..., Any]:
    """Acknowledge a retried Events API delivery that was already seen, without redoing it."""

    def guard(body: dict[str, Any], request: Any, next_: Callable[[], Any]) -> Any:
        request.context[STARTED] = time.monotonic()
        event_id = body.get("event_id") if isinstance(body, dict) else None
        if event_id:
            key = f"{ctx.settings.redis.key_prefix}:bot:event:{event_id}"
            first = ctx.redis.set(key, "1", nx=True, ex=EVENT_SEEN_TTL)
            if not first and request.headers.get("x-slack-retry-num"):
                return BoltResponse(status=200, body="")
        return next_()

    return guard
