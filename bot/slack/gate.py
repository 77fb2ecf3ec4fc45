"""The gate in front of Bolt: a Slack request is framed, signed and parseable, or refused.

Bolt's WSGI adapter decodes and parses a body before it checks the signature, so anyone's junk
became a 500 and a traceback. Here the raw bytes are checked first (Slack's v0 HMAC-SHA256 over
``v0:{timestamp}:{body}``, five-minute window), then decoded and parsed once; only then does Bolt
see the request. Every refusal is one warning line that echoes nothing the caller sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from slack_bolt import App, BoltRequest
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.adapter.wsgi.http_response import WsgiHttpResponse

MAX_BODY = 1024 * 1024
"""Bytes a request body may have; Slack's largest (view submissions with their state) are KBs."""
WINDOW = 60 * 5
"""Seconds a request's timestamp may be from now, as Slack's verification guide asks."""
_DIGITS = re.compile(r"[0-9]{1,12}")  # int() also takes "+1", "1_0", "١": a signature would pass
_JUNK = (ValueError, TypeError, AttributeError, KeyError, IndexError)  # what parsing junk raises


@dataclass(frozen=True)
class Refusal:
    """A request turned away: its HTTP status, a reason for the log and a word for the caller."""

    status: int
    reason: str
    message: str = "invalid request"


class Gate:
    """A WSGI app for ``POST /slack/events`` that hands Bolt only verified, parseable requests."""

    def __init__(
        self,
        app: App,
        signing_secret: str,
        *,
        clock: Callable[[], float] = time.time,
        max_body: int = MAX_BODY,
    ) -> None:
        self.app = app
        self._secret = signing_secret.encode()
        self._clock = clock
        self._max_body = max_body

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _answer(start_response, 405, {"error": "POST only"}, [("Allow", "POST")])
        admitted = self.admit(environ)
        if isinstance(admitted, Refusal):
            structlog.get_logger().warning(
                "slack request refused",
                reason=admitted.reason,
                status=admitted.status,
                remote=environ.get("REMOTE_ADDR"),
            )
            return _answer(start_response, admitted.status, {"error": admitted.message})
        bolt = self.app.dispatch(admitted)
        response = WsgiHttpResponse(bolt.status, bolt.headers, bolt.body)
        start_response(response.status, response.get_headers())
        return response.get_body()

    def admit(self, environ: dict[str, Any]) -> BoltRequest | Refusal:
        """The request for Bolt, or why it is refused; nothing is parsed before the signature."""
        raw = self._read(environ)
        if isinstance(raw, Refusal):
            return raw
        refusal = self._verify(environ, raw)
        if refusal is not None:
            return refusal
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return Refusal(400, "body not UTF-8", "request body is not UTF-8")
        wsgi = WsgiHttpRequest(environ)
        try:
            # BoltRequest parses the body (JSON, or a form with a payload= field) and reads
            # its ids: it raises one of _JUNK when the body is not a JSON object it can read.
            request = BoltRequest(body=text, query=wsgi.query_string, headers=wsgi.get_headers())
        except _JUNK as exc:
            return Refusal(400, f"malformed body ({type(exc).__name__})", "malformed request body")
        return request

    def _read(self, environ: dict[str, Any]) -> bytes | Refusal:
        length = environ.get("CONTENT_LENGTH") or ""
        if not _DIGITS.fullmatch(length):
            return Refusal(400, "no Content-Length", "Content-Length required")
        if int(length) > self._max_body:
            return Refusal(413, "body too large", "request body too large")
        raw = environ["wsgi.input"].read(int(length))
        if len(raw) != int(length):
            return Refusal(400, "body shorter than Content-Length", "request body cut short")
        return bytes(raw)

    def _verify(self, environ: dict[str, Any], raw: bytes) -> Refusal | None:
        stamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE")
        if stamp is None or signature is None:
            return Refusal(401, "unsigned")
        if not _DIGITS.fullmatch(stamp):
            return Refusal(401, "timestamp not digits")
        if abs(self._clock() - int(stamp)) > WINDOW:
            return Refusal(401, "timestamp outside the window")
        # On the bytes as sent: slack_sdk's SignatureVerifier decodes them first, and a body
        # that is not UTF-8 must be refused for its signature, not crash the check.
        base = b"v0:" + stamp.encode() + b":" + raw
        expected = b"v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest().encode()
        # WSGI hands header values over as latin-1 text: this gives back the bytes sent.
        if not hmac.compare_digest(expected, signature.encode("latin-1", "replace")):
            return Refusal(401, "bad signature")
        return None


def _answer(
    start_response: Callable[..., Any],
    status: int,
    body: dict[str, str],
    headers: list[tuple[str, str]] | None = None,
) -> Iterable[bytes]:
    response = WsgiHttpResponse(status, {"content-type": ["application/json"]}, json.dumps(body))
    start_response(response.status, [*response.get_headers(), *(headers or [])])
    return response.get_body()
