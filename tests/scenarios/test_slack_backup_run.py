"""End to end: `/backup run postgres` in Slack; a real worker backs it up, live."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import PG_DSN
from tests.fakes.slack import FakeSlack, post_to_bot, slash_body
from tests.scenarios.bot_process import SECRET, bot_env, running_bot, running_worker
from workers.context import Context
from workers.settings import load_settings

pytestmark = pytest.mark.timeout(180)
CHANNEL = "COPS"


@pytest.fixture
def small_database() -> Iterator[str]:
    """A small database (prefix kb_d_) dropped afterwards."""
    name = f"kb_d_{secrets.token_hex(4)}"
    with psycopg.connect(f"{PG_DSN} dbname=postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(f"{PG_DSN} dbname={name}", autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        conn.execute(
            "INSERT INTO notes SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 5000) g"
        )
    yield name
    with psycopg.connect(f"{PG_DSN} dbname=postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def top_level(fake: FakeSlack) -> list[Any]:
    return [c for c in fake.calls_to("chat.postMessage") if "thread_ts" not in c.params]


def test_run_postgres_from_slack_is_acked_fast_and_ends_in_success_in_the_channel(
    tmp_path: Path, redis_url: str, small_database: str
) -> None:
    fake = FakeSlack(usergroups={"platform": ["UOPS"], "sre": ["UOPS"]}).start()
    env = bot_env(
        fake.api_url,
        redis_url,
        tmp_path / "store",
        KOSMOS_PG_DSN="host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        KOSMOS__COMPONENTS__POSTGRES__DATABASES=f"[{small_database}]",
    )
    try:
        with (
            running_bot(env, tmp_path / "bot.log") as bot,
            running_worker(env, tmp_path / "worker.log", "kosmos-default"),
        ):
            body = slash_body("run postgres", user="UOPS", channel=CHANNEL)
            answer = post_to_bot(bot.url, body, SECRET)
            assert answer.status == 200 and answer.seconds < 3.0
            op_id = answer.body["text"].split("`")[1]
            fake.wait_for(
                lambda: any(
                    "done" in str(m["text"]) for m in fake.messages.values() if "thread_ts" not in m
                ),
                timeout=90,
            )
            fake.wait_for(lambda: len(fake.calls_to("chat.postMessage")) >= 2, timeout=10)
    finally:
        fake.stop()
    logs = (tmp_path / "worker.log").read_text()[-3000:]
    posts = top_level(fake)
    assert len(posts) == 1, logs
    assert posts[0].params["channel"] == CHANNEL and op_id in str(posts[0].params["blocks"])
    assert posts[0].params["text"] == "Backup of postgres: queued"
    ts = fake.messages[(CHANNEL, _ts_of(fake, op_id))]["ts"]
    updates = [c for c in fake.calls_to("chat.update") if c.params["ts"] == ts]
    assert updates, "the message was never updated in place"
    final = updates[-1].params["text"]
    settings = load_settings(environ={**env})
    backups = Context(settings).repo.index("postgres").backups
    assert len(backups) == 1
    backup = backups[0]
    assert final.startswith("Backup of postgres: done · ")
    assert backup.id in final
    from bot.formats import size

    assert size(backup.size) in final
    threads = [c for c in fake.calls_to("chat.postMessage") if c.params.get("thread_ts") == ts]
    assert any(backup.id in c.params["text"] for c in threads)


def _ts_of(fake: FakeSlack, op_id: str) -> str:
    for (channel, ts), message in fake.messages.items():
        if channel == CHANNEL and "thread_ts" not in message and op_id in str(message["blocks"]):
            return ts
    raise AssertionError(f"no message for {op_id}")
