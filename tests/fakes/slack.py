"""A fake Slack Web API: a real local HTTP server that slack_sdk talks to through ``base_url``.

Serves auth.test, chat.postMessage (with message metadata), chat.update,
chat.postEphemeral, conversations.history and .replies, usergroups.list,
usergroups.users.list, the two-step external file upload and ``response_url`` endpoints.
It records every call, can be told to answer some calls with 429 and a Retry-After, or to
do a call and lose its answer (the connection drops), and signs requests to the bot
exactly as Slack does (``v0:{timestamp}:{body}``, HMAC-SHA256).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot.slack.answer import SLOW
from tests.sync import wait_until

BOT_USER = "UKOSMOSBOT"
TEAM = "TKOSMOS"


@dataclass(frozen=True)
class Call:
    """One recorded Web API call."""

    method: str
    params: dict[str, Any]
    at: float
    status: int


@dataclass
class FakeSlack:
    """The fake's state: channels, messages, user groups, calls, pending 429s."""

    usergroups: dict[str, list[str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    responses: list[dict[str, Any]] = field(default_factory=list)
    responses_to: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    fail: dict[str, str] = field(default_factory=dict)
    _limits: dict[str, list[int]] = field(default_factory=dict)
    _lost: list[tuple[str, Callable[[dict[str, Any]], bool]]] = field(default_factory=list)
    _channels: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    server: ThreadingHTTPServer | None = None

    # -- life ----------------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        """Listen on a free loopback port in a daemon thread."""
        fake = self

        class Handler(_Handler):
            state = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self.server is not None
        return int(self.server.server_address[1])

    @property
    def api_url(self) -> str:
        """The Web API base URL for ``WebClient(base_url=…)`` / ``slack.api_url``."""
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, token: str = "r1") -> str:
        """A response_url that records what is posted to it."""
        return f"http://127.0.0.1:{self.port}/response/{token}"

    # -- behaviour -----------------------------------------------------------------------------

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 and ``Retry-After``."""
        with self._lock:
            self._limits.setdefault(method, []).extend([retry_after] * times)

    def lose_answers(
        self,
        method: str,
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] = lambda params: True,
    ) -> None:
        """Do the next ``times`` calls to ``method`` (those ``when`` picks by their
        parameters), then drop each connection unanswered."""
        with self._lock:
            self._lost.extend([(method, when)] * times)

    def answer_lost(self, method: str, params: dict[str, Any]) -> bool:
        """Whether this call's answer is to be lost (each planned loss happens once)."""
        with self._lock:
            for at, (lost, when) in enumerate(self._lost):
                if lost == method and when(params):
                    del self._lost[at]
                    return True
        return False

    def clear_rate_limits(self) -> None:
        """Answer every call normally again."""
        with self._lock:
            self._limits.clear()

    def channel_id(self, name: str) -> str:
        """The id the fake gives a channel name (``#ops`` -> ``C…``); ids map to themselves."""
        if name.startswith(("C", "G", "D")) and not name.startswith("#"):
            return name
        with self._lock:
            if name not in self._channels:
                digest = hashlib.sha1(name.encode()).hexdigest()[:8].upper()
                self._channels[name] = f"C{digest}"
            return self._channels[name]

    # -- inspection ----------------------------------------------------------------------------

    def calls_to(self, method: str, ok_only: bool = True) -> list[Call]:
        """Recorded calls of one method (by default only those answered 200)."""
        with self._lock:
            return [
                c for c in self.calls if c.method == method and (c.status == 200 or not ok_only)
            ]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Block until ``predicate()`` holds, or fail with AssertionError naming the calls."""
        try:
            wait_until(predicate, timeout, "a condition", interval=0.02)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; calls: {self.summary()}") from None

    def summary(self) -> list[tuple[str, int]]:
        """Method and status of every call so far, for failure messages."""
        with self._lock:
            return [(c.method, c.status) for c in self.calls]

    # -- the API -------------------------------------------------------------------------------

    def answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any], int]:
        """Status, JSON body and Retry-After (0 for none) for one Web API call."""
        with self._lock:
            pending = self._limits.get(method)
            if pending:
                retry_after = pending.pop(0)
                self.calls.append(Call(method, params, time.monotonic(), 429))
                return 429, {"ok": False, "error": "ratelimited"}, retry_after
            self.calls.append(Call(method, params, time.monotonic(), 200))
        if method in self.fail:
            return 200, {"ok": False, "error": self.fail[method]}, 0
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, 0
        return 200, handler(params), 0

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://kosmos.slack.com/",
            "team": "kosmos",
            "user": "kosmos-backup",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": "BKOSMOS",
        }

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        channel = self.channel_id(str(params.get("channel", "")))
        ts = f"{1_700_000_000 + next(self._ts)}.000100"
        message = {"ts": ts, "text": params.get("text"), "blocks": params.get("blocks")}
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        metadata = params.get("metadata")
        if metadata:
            message["metadata"] = json.loads(metadata) if isinstance(metadata, str) else metadata
        with self._lock:
            self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self.channel_id(str(params.get("channel", "")))
        with self._lock:
            found = [
                m
                for (c, _), m in self.messages.items()
                if c == channel and m.get("thread_ts", m["ts"]) == m["ts"]
            ]
        return self._page(found, params)

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self.channel_id(str(params.get("channel", "")))
        parent = str(params.get("ts"))
        with self._lock:
            found = [
                m
                for (c, ts), m in self.messages.items()
                if c == channel and (ts == parent or m.get("thread_ts") == parent)
            ]
        return self._page(found, params)

    def _page(self, found: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        """Newest first, ``limit`` at a time; metadata only when asked for, as Slack does."""
        found = sorted(found, key=lambda m: float(m["ts"]), reverse=True)
        start = int(params.get("cursor") or 0)
        limit = int(params.get("limit") or 100)
        page = found[start : start + limit]
        if str(params.get("include_all_metadata")).lower() not in ("1", "true"):
            page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(found)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (str(params.get("channel")), str(params.get("ts")))
        with self._lock:
            if key not in self.messages:
                return {"ok": False, "error": "message_not_found"}
            self.messages[key].update(text=params.get("text"), blocks=params.get("blocks"))
        return {"ok": True, "channel": key[0], "ts": key[1], "text": params.get("text")}

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return {"ok": True, "message_ts": f"{1_700_000_000 + next(self._ts)}.000200"}

    def _usergroups_list(self, params: dict[str, Any]) -> dict[str, Any]:
        groups = [
            {"id": _group_id(handle), "handle": handle, "name": handle}
            for handle in self.usergroups
        ]
        return {"ok": True, "usergroups": groups}

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("usergroup")
        for handle, users in self.usergroups.items():
            if _group_id(handle) == wanted:
                return {"ok": True, "users": list(users)}
        return {"ok": False, "error": "no_such_subteam"}

    def _files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        file_id = f"F{next(self._ts):08d}"
        return {"ok": True, "file_id": file_id, "upload_url": f"{self._base()}/upload/{file_id}"}

    def _files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        files = params.get("files")
        listed = json.loads(files) if isinstance(files, str) else files or []
        missing = [f["id"] for f in listed if f["id"] not in self.uploads]
        if missing:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in listed]}

    def _base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _group_id(handle: str) -> str:
    return "S" + hashlib.sha1(handle.encode()).hexdigest()[:8].upper()


class _Handler(BaseHTTPRequestHandler):
    state: FakeSlack

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        url = urllib.parse.urlsplit(self.path)
        self._api(url.path, dict(urllib.parse.parse_qsl(url.query)))

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        url = urllib.parse.urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if url.path.startswith("/upload/"):
            with self.state._lock:
                self.state.uploads[url.path.rsplit("/", 1)[1]] = body
            self._send(200, b"OK - %d" % len(body), "text/plain")
            return
        if url.path.startswith("/response/"):
            posted = json.loads(body or b"{}")
            with self.state._lock:
                self.state.responses.append(posted)
                self.state.responses_to.setdefault(url.path.rsplit("/", 1)[1], []).append(posted)
            self._send(200, b"ok", "text/plain")
            return
        params = dict(urllib.parse.parse_qsl(url.query))
        if "json" in (self.headers.get("Content-Type") or ""):
            params.update(json.loads(body or b"{}"))
        else:
            params.update(urllib.parse.parse_qsl(body.decode()))
        self._api(url.path, params)

    def _api(self, path: str, params: dict[str, Any]) -> None:
        if not path.startswith("/api/"):
            self._send(404, b"not found", "text/plain")
            return
        method = path[len("/api/") :]
        status, body, retry_after = self.state.answer(method, params)
        if self.state.answer_lost(method, params):
            self.close_connection = True  # done, and the caller never hears of it
            return
        extra = {"Retry-After": str(retry_after)} if retry_after else {}
        self._send(status, json.dumps(body).encode(), "application/json", extra)

    def _send(
        self, status: int, body: bytes, kind: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def fake_slack(**usergroups: list[str]) -> Iterator[FakeSlack]:
    """A running fake for the duration of the block."""
    fake = FakeSlack(usergroups=dict(usergroups)).start()
    try:
        yield fake
    finally:
        fake.stop()


# -- requests to the bot, signed as Slack signs them -------------------------------------------


def signature_headers(
    secret: str, body: bytes, timestamp: int | str | None = None
) -> dict[str, str]:
    """``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` for ``body`` (a str stamp as is)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def slash_body(
    text: str,
    *,
    command: str = "/backup",
    user: str = "UOPERATOR",
    channel: str = "COPS",
    response_url: str = "",
    trigger_id: str | None = None,
) -> bytes:
    """The form body Slack posts for a slash command."""
    fields = {
        "token": "legacy-unused",
        "team_id": TEAM,
        "team_domain": "kosmos",
        "channel_id": channel,
        "channel_name": "kosmos-ops",
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "api_app_id": "AKOSMOS",
        "response_url": response_url,
        "trigger_id": trigger_id
        or f"{time.time_ns()}.{TEAM}.{hashlib.sha1(text.encode()).hexdigest()[:12]}",
    }
    return urllib.parse.urlencode(fields).encode()


@dataclass(frozen=True)
class BotAnswer:
    """The bot's HTTP answer to one request."""

    status: int
    body: dict[str, Any]
    seconds: float


def post_to_bot(
    url: str,
    body: bytes,
    secret: str,
    *,
    timestamp: int | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> BotAnswer:
    """POST a signed request to the bot and time its answer."""
    request = urllib.request.Request(
        url, data=body, headers={**signature_headers(secret, body, timestamp), **(headers or {})}
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    seconds = time.monotonic() - started
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = {"raw": raw.decode("utf-8", "replace")}
    return BotAnswer(status, parsed if isinstance(parsed, dict) else {"value": parsed}, seconds)


def slash_answer(
    fake: FakeSlack,
    bot_url: str,
    secret: str,
    text: str,
    *,
    command: str,
    user: str,
    channel: str,
    timeout: float = 60.0,
) -> BotAnswer:
    """A slash command as Slack sends it (with a response_url), and the bot's answer to it.

    The answer is the acknowledgement's, or, when the acknowledgement only says that the
    answer follows (``bot.slack.answer.SLOW``), the first message posted to the command's
    response_url; ``seconds`` is always the acknowledgement's.
    """
    token = f"{user}-{time.time_ns()}"
    body = slash_body(
        text, command=command, user=user, channel=channel, response_url=fake.response_url(token)
    )
    answer = post_to_bot(bot_url, body, secret)
    if SLOW not in json.dumps(answer.body, ensure_ascii=False):
        return answer
    fake.wait_for(lambda: bool(fake.responses_to.get(token)), timeout)
    return BotAnswer(answer.status, fake.responses_to[token][0], answer.seconds)
