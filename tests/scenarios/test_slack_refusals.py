"""Junk at the Slack endpoint: refused before anything is parsed, with one warning line."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator

import pytest
import redis as redis_lib
from rq import Queue

from tests.conftest import REDIS_DB
from tests.fakes.slack import BotAnswer, FakeSlack, post_to_bot, signature_headers, slash_body
from tests.scenarios.bot_process import SECRET, BotProcess, bot_env, running_bot

MARKER = "kosmos-marker-7d1f"
"""Put in every refused body: it must never reach the log."""
NOT_UTF8 = b"command=%2Fbackup&user_id=UOPS&text=" + MARKER.encode() + b"\xff\xfe\xc3("


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    fake = FakeSlack(usergroups={"platform": ["UVIEW", "UOPS"], "sre": ["UOPS"]}).start()
    folder = tmp_path_factory.mktemp("bot")
    env = bot_env(fake.api_url, f"redis://127.0.0.1:6379/{REDIS_DB}", folder / "store")
    try:
        with running_bot(env, folder / "bot.log") as b:
            yield b
    finally:
        fake.stop()


def refused(bot: BotProcess, send: Callable[[], BotAnswer]) -> BotAnswer:
    """Send one request; check it left exactly one warning and nothing else worth a look."""
    mark = bot.log.stat().st_size
    answer = send()
    with open(bot.log, "rb") as log:
        log.seek(mark)
        text = log.read().decode("utf-8", "replace")
    assert "Traceback" not in text and "internal error" not in text
    assert MARKER not in text and SECRET not in text
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    refusals = [r for r in records if r.get("event") == "slack request refused"]
    assert len(refusals) == 1, text
    assert refusals[0]["level"] == "warning" and refusals[0]["status"] == answer.status
    assert not [r for r in records if r.get("level") in ("error", "critical")], text
    return answer


def jobs(redis_url: str) -> int:
    client = redis_lib.Redis.from_url(redis_url)
    try:
        return sum(queue.count for queue in Queue.all(connection=client))
    finally:
        client.close()


def test_a_body_that_is_not_utf8_is_401_unsigned_and_400_signed(bot: BotProcess) -> None:
    unsigned = refused(bot, lambda: post_to_bot(bot.url, NOT_UTF8, "not-the-secret"))
    assert unsigned.status == 401
    signed = refused(bot, lambda: post_to_bot(bot.url, NOT_UTF8, SECRET))
    assert signed.status == 400 and "UTF-8" in signed.body["error"]
    fine = post_to_bot(bot.url, slash_body("help", user="UVIEW"), SECRET)
    assert fine.status == 200 and fine.body["response_type"] == "ephemeral"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"payload=%7B%22type%22%3A+%22block_actions%22%2C", None),  # cut short
        (b"payload=" + urllib.parse.quote_from_bytes(b"[1, 2]").encode(), None),
        (b"payload=%22" + MARKER.encode() + b"%22", None),
        (b'{"type": "event_callback", "event_id": ', "application/json"),
        (b"[1, 2]", "application/json"),
    ],
)
def test_a_payload_that_is_not_a_json_object_is_401_unsigned_and_400_signed(
    bot: BotProcess, body: bytes, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    unsigned = refused(bot, lambda: post_to_bot(bot.url, body, "wrong", headers=headers))
    assert unsigned.status == 401
    signed = refused(bot, lambda: post_to_bot(bot.url, body, SECRET, headers=headers))
    assert signed.status == 400 and "malformed" in signed.body["error"]


@pytest.mark.parametrize("stamp", ["soon", "", "{now}.0", "+{now}", "{now:_}"])
def test_a_timestamp_that_is_not_plain_digits_is_refused_with_401(
    bot: BotProcess, redis_url: str, stamp: str
) -> None:
    body = slash_body("run postgres " + MARKER, user="UOPS")
    stamped = stamp.format(now=int(time.time()))  # signed over exactly this string
    answer = refused(bot, lambda: post_to_bot(bot.url, body, SECRET, timestamp=stamped))
    assert answer.status == 401 and answer.body == {"error": "invalid request"}
    assert jobs(redis_url) == 0


def test_a_bad_signature_is_one_warning_that_echoes_nothing(bot: BotProcess) -> None:
    body = slash_body("status " + MARKER, user="UVIEW")
    forged = {"X-Slack-Signature": "v0=" + "ab" * 32}
    answer = refused(bot, lambda: post_to_bot(bot.url, body, SECRET, headers=forged))
    assert answer.status == 401 and answer.body == {"error": "invalid request"}
    for missing in ("X-Slack-Signature", "X-Slack-Request-Timestamp"):
        headers = signature_headers(SECRET, body)
        del headers[missing]
        request = urllib.request.Request(bot.url, data=body, headers=headers)
        assert refused(bot, lambda r=request: send(r)).status == 401


def send(request: urllib.request.Request) -> BotAnswer:
    """POST a prepared request and read the answer, whatever its status."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return BotAnswer(status, json.loads(raw) if raw else {}, time.monotonic() - started)


def raw_post(bot: BotProcess, headers: dict[str, str], body: bytes, chunked: bool) -> BotAnswer:
    """POST with hand-set framing: a lying Content-Length, or chunks without one."""
    conn = http.client.HTTPConnection("127.0.0.1", bot.port, timeout=5)
    try:
        started = time.monotonic()
        conn.putrequest("POST", "/slack/events")
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if chunked else body)
        response = conn.getresponse()
        raw = response.read()
        return BotAnswer(
            response.status, json.loads(raw) if raw else {}, time.monotonic() - started
        )
    finally:
        conn.close()


def test_a_missing_or_oversized_length_is_refused_without_reading_the_body(
    bot: BotProcess,
) -> None:
    body = slash_body("status " + MARKER, user="UVIEW")
    signed = signature_headers(SECRET, body)
    huge = {**signed, "Content-Length": str(64 * 1024 * 1024)}
    too_big = refused(bot, lambda: raw_post(bot, huge, body, chunked=False))
    assert too_big.status == 413 and too_big.seconds < 2
    chunks = {**signed, "Transfer-Encoding": "chunked"}
    unknown = refused(bot, lambda: raw_post(bot, chunks, body, chunked=True))
    assert unknown.status == 400 and "Content-Length" in unknown.body["error"]


def test_only_post_is_answered_at_the_events_path(bot: BotProcess) -> None:
    request = urllib.request.Request(bot.url, method="GET")
    with pytest.raises(urllib.error.HTTPError) as refused_get:
        urllib.request.urlopen(request, timeout=5)
    assert refused_get.value.code == 405 and refused_get.value.headers["Allow"] == "POST"
