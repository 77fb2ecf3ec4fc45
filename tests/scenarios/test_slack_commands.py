"""Slash commands as Slack sends them, signed, to the bot served by gunicorn."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from rq import Queue

from tests.conftest import REDIS_DB
from tests.fakes.slack import FakeSlack, post_to_bot, slash_answer, slash_body
from tests.scenarios.bot_process import SECRET, BotProcess, bot_env, running_bot
from tests.services import free_port, wait_for_port

GROUPS = {"platform": ["UVIEW", "UOPS"], "sre": ["UOPS"]}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSlack]:
    server = FakeSlack(usergroups={k: list(v) for k, v in GROUPS.items()}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bot(fake: FakeSlack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    """One bot for the module; each test's ``redis_url`` empties its Redis db meanwhile."""
    folder = tmp_path_factory.mktemp("bot")
    redis_url = f"redis://127.0.0.1:6379/{REDIS_DB}"
    env = bot_env(fake.api_url, redis_url, folder / "store")
    with running_bot(env, folder / "bot.log", metrics=True) as b:
        yield b


def texts(body: dict[str, Any]) -> list[str]:
    return [block["text"]["text"] for block in body.get("blocks", []) if "text" in block]


def jobs(redis_url: str) -> int:
    client = redis_lib.Redis.from_url(redis_url)
    try:
        return sum(queue.count for queue in Queue.all(connection=client))
    finally:
        client.close()


def test_a_bad_signature_or_a_stale_timestamp_is_refused_with_401(
    bot: BotProcess, redis_url: str
) -> None:
    body = slash_body("run postgres", user="UOPS")
    assert post_to_bot(bot.url, body, "not-the-secret").status == 401
    stale = int(time.time()) - 5 * 60 - 5
    assert post_to_bot(bot.url, body, SECRET, timestamp=stale).status == 401
    tampered = post_to_bot(bot.url, body, SECRET, headers={"X-Slack-Signature": "v0=" + "0" * 64})
    assert tampered.status == 401
    assert jobs(redis_url) == 0
    fresh = int(time.time()) - 4 * 60  # inside the 5-minute window
    assert (
        post_to_bot(bot.url, slash_body("help", user="UVIEW"), SECRET, timestamp=fresh).status
        == 200
    )


def test_a_viewer_gets_the_status_board_well_within_three_seconds(
    bot: BotProcess, fake: FakeSlack, redis_url: str
) -> None:
    answer = slash_answer(
        fake, bot.url, SECRET, "status", command="/backup", user="UVIEW", channel="COPS"
    )
    assert answer.status == 200 and answer.seconds < 3.0
    assert answer.body["response_type"] == "ephemeral"
    header, *rows = texts(answer.body)
    assert header == "Backups · RPO 1h · RTO 4h"
    assert [row.split(" ", 1)[0] for row in rows] == [
        "*postgres*",
        "*minio*",
        "*etcd*",
        "*kubernetes*",
        "*secrets*",
    ]
    assert ":white_circle: never backed up" in rows[0] and "no WAL archived" in rows[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frobnicate", ":warning: unknown subcommand 'frobnicate' for /backup"),
        ("run mongodb", ":warning: unknown component 'mongodb'\n```valid components: postgres"),
        ("list", ":warning: missing &lt;component&gt;"),
        ("run postgres --now", ":warning: unknown option '--now'"),
    ],
)
def test_invalid_input_gets_an_ephemeral_usage_message_and_no_job(
    bot: BotProcess, redis_url: str, text: str, expected: str
) -> None:
    answer = post_to_bot(bot.url, slash_body(text, user="UOPS"), SECRET)
    assert answer.status == 200
    assert answer.body["response_type"] == "ephemeral"
    assert texts(answer.body)[0].startswith(expected)
    assert "Traceback" not in str(answer.body)
    assert jobs(redis_url) == 0


def test_a_viewer_is_refused_run_with_a_clear_ephemeral_message(
    bot: BotProcess, redis_url: str
) -> None:
    answer = post_to_bot(bot.url, slash_body("run postgres", user="UVIEW"), SECRET)
    assert answer.status == 200 and answer.body["response_type"] == "ephemeral"
    assert texts(answer.body)[0].startswith(
        ":no_entry: you may not use backup run: it needs the operators"
    )
    stranger = post_to_bot(bot.url, slash_body("status", user="USTRANGER"), SECRET)
    assert texts(stranger.body)[0].startswith(":no_entry: you may not use backup status")
    assert jobs(redis_url) == 0


def test_refusals_name_who_holds_each_role_and_hints_name_chat_commands(
    bot: BotProcess, fake: FakeSlack, redis_url: str
) -> None:
    refused = post_to_bot(bot.url, slash_body("run postgres", user="UVIEW"), SECRET)
    assert texts(refused.body)[0].endswith(
        "\n_ask an admin to add you to slack.roles.operators "
        "(today operators: @sre; incident_commanders: @incident-commanders)_"
    )
    missing = "postgres-20261124T0300Z-0000"
    typed = f"postgres {missing} --target kb_nowhere -- why"
    answer = slash_answer(
        fake, bot.url, SECRET, typed, command="/restore", user="UOPS", channel="COPS"
    )
    assert texts(answer.body) == [
        f":x: postgres: no backup '{missing}'\n_see: /backup list postgres_"
    ]
    assert jobs(redis_url) == 0


def test_a_retried_request_is_one_job_and_the_same_answer(bot: BotProcess, redis_url: str) -> None:
    # A backup run: a verify of a backup that does not exist is refused before the queue.
    body = slash_body("run etcd", user="UOPS", trigger_id="1234.5678.abcd")
    first = post_to_bot(bot.url, body, SECRET)
    again = post_to_bot(bot.url, body, SECRET, headers={"X-Slack-Retry-Num": "1"})
    assert first.status == again.status == 200
    op_id = texts(first.body)[0].split("`")[1]
    assert op_id.startswith("op-") and f"`{op_id}`" in texts(again.body)[0]
    assert "retry" in texts(again.body)[0]
    assert jobs(redis_url) == 1


def test_verify_of_a_backup_that_does_not_exist_is_refused_naming_the_list_command(
    bot: BotProcess, fake: FakeSlack, redis_url: str
) -> None:
    missing = "postgres-20200101T0000Z-beef"
    typed = f"verify postgres {missing}"
    answer = slash_answer(
        fake, bot.url, SECRET, typed, command="/backup", user="UOPS", channel="COPS"
    )
    assert answer.status == 200 and answer.body["response_type"] == "ephemeral"
    text = " ".join(texts(answer.body))
    assert f"postgres: no backup '{missing}'" in text and "/backup list postgres" in text
    assert "Traceback" not in text
    assert jobs(redis_url) == 0


def test_an_unexpected_error_is_an_internal_error_with_an_operation_id(
    fake: FakeSlack, tmp_path: Path
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # Redis down: not a KosmosError
    env = bot_env(fake.api_url, nowhere, tmp_path / "store")
    with running_bot(env, tmp_path / "bot.log") as down:
        answer = post_to_bot(down.url, slash_body("run postgres", user="UOPS"), SECRET)
    assert answer.status == 200 and answer.body["response_type"] == "ephemeral"
    text = texts(answer.body)[0]
    assert text.startswith(":boom: internal error, operation `op-")
    assert "Traceback" not in text and "ConnectionError" not in text
    logged = (tmp_path / "bot.log").read_text()
    assert "internal error" in logged and text.split("`")[1] in logged


def test_metrics_count_commands_by_outcome_across_worker_processes(
    bot: BotProcess, redis_url: str
) -> None:
    def scrape() -> dict[str, float]:
        url = f"http://127.0.0.1:{bot.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            lines = answer.read().decode().splitlines()
        return {
            name: float(value)
            for name, _, value in (line.rpartition(" ") for line in lines)
            if name.startswith("kosmos_bot_")
        }

    wait_for_port(int(bot.metrics_port or 0))
    before = scrape()
    for text in ("status", "status", "nonsense", "help"):
        post_to_bot(bot.url, slash_body(text, user="UVIEW"), SECRET)
    after = scrape()
    ok = 'kosmos_bot_commands_total{command="/backup",outcome="ok"}'
    usage = 'kosmos_bot_commands_total{command="/backup",outcome="usage"}'
    assert after[ok] - before.get(ok, 0.0) == 3
    assert after[usage] - before.get(usage, 0.0) == 1
    count = "kosmos_bot_ack_seconds_count"
    assert after[count] - before.get(count, 0.0) == 4


def event_body(event_id: str) -> bytes:
    """An Events API delivery (an app mention), as Slack posts it."""
    event = {"type": "app_mention", "user": "UOPS", "text": "<@UBOT> status", "channel": "COPS"}
    doc = {"type": "event_callback", "team_id": "T1", "event_id": event_id, "event": event}
    return json.dumps(doc).encode()


def test_an_events_api_retry_of_a_seen_event_id_is_acknowledged_and_not_redone(
    bot: BotProcess, redis_url: str
) -> None:
    client = redis_lib.Redis.from_url(redis_url)
    json_type = {"Content-Type": "application/json"}
    first = post_to_bot(bot.url, event_body("Ev0001"), SECRET, headers=json_type)
    # The bot listens to no event type yet: Bolt itself answers the first delivery.
    assert (first.status, first.body) == (404, {"error": "unhandled request"})
    seen = client.keys("*:bot:event:Ev0001")
    assert len(seen) == 1 and 0 < client.ttl(seen[0]) <= 3600
    retry = {**json_type, "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    again = post_to_bot(bot.url, event_body("Ev0001"), SECRET, headers=retry)
    assert (again.status, again.body) == (200, {})  # acknowledged, handled once
    # A retry whose first delivery never arrived is handled as a first delivery.
    lost = post_to_bot(bot.url, event_body("Ev0002"), SECRET, headers=retry)
    assert lost.status == first.status and lost.body == first.body
    assert len(client.keys("*:bot:event:*")) == 2
    client.close()
