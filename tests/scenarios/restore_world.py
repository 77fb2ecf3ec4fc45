"""The world of the restore-approval scenarios: the fake Slack, the bot under gunicorn, a
source database with a backup, and ways to talk to the bot as Slack does (slash commands and
signed button clicks) and to look at what happened (cards, ephemerals, audit, operations).
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE_CONFIG, PG_DSN, REDIS_DB
from tests.fakes.slack import BotAnswer, FakeSlack, post_to_bot, slash_answer
from tests.pgsample import create_database, drop_database, rows_of
from tests.scenarios.bot_process import SECRET, BotProcess, bot_env, running_bot
from tests.sync import wait_until as wait_until  # the one copy; re-exported for callers
from workers import components
from workers.config_loader import parse_settings
from workers.context import Context, utc_now
from workers.restore.requests import (
    audit_of,
)

CHANNEL = "COPS"
HELD_QUEUE = "kosmos-e-held"
KEY = "scenario-approval-key-0123456789"
GROUPS = {
    "platform": ["UVIEW", "UALICE", "UBOB", "UDAVE", "UERIN"],
    "sre": ["UALICE", "UERIN"],
    "sre-leads": ["UBOB", "UDAVE"],
    "incident-commanders": ["UERIN"],
}
TOKENS = {"UALICE": "alice-token-" + "a" * 24, "UBOB": "bob-token-" + "b" * 24}
REQUEST_ID = re.compile(r"rr-\d{8}T\d{4}Z-[0-9a-f]{6}")


@dataclass
class World:
    """Everything a scenario needs: the fake, the bot, the config, the source database."""

    fake: FakeSlack
    bot: BotProcess
    env: dict[str, str]
    folder: Path
    source: str
    fresh: Any

    @property
    def settings(self) -> Any:
        return parse_settings(EXAMPLE_CONFIG.read_text(), self.env)

    def ctx(self, shift: timedelta = timedelta(0)) -> Context:
        return Context(self.settings, clock=lambda: utc_now() + shift)


def _identities() -> str:
    import hashlib

    rows = [
        f"{user}: {{name: {user.lower()}, token_sha256: "
        f"{hashlib.sha256(token.encode()).hexdigest()}, roles: [approvers]}}"
        for user, token in TOKENS.items()
    ]
    return "{" + ", ".join(rows) + "}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("restore")
    fake = FakeSlack(usergroups={k: list(v) for k, v in GROUPS.items()}).start()
    names: list[str] = []

    def fresh(tag: str) -> str:
        names.append(f"kb_e_{tag}_{secrets.token_hex(3)}")
        return names[-1]

    try:
        source = fresh("src")
        create_database(source, SOURCE_SQL)
        env = bot_env(
            fake.api_url,
            f"redis://127.0.0.1:6379/{REDIS_DB}",
            folder / "store",
            **_overrides(source),
        )
        settings = parse_settings(EXAMPLE_CONFIG.read_text(), env)
        for component in ("postgres", "held"):
            components.backup(Context(settings), component)
        with running_bot(env, folder / "bot.log") as bot:
            yield World(fake, bot, env, folder, source, fresh)
    finally:
        fake.stop()
        for name in names:
            drop_database(name)


SOURCE_SQL = """
CREATE TABLE accounts (id int PRIMARY KEY, name text);
INSERT INTO accounts SELECT g, md5(g::text) FROM generate_series(1, 3000) AS g;
CREATE TABLE notes (body text);
INSERT INTO notes VALUES ('a'), (NULL);
"""


def _overrides(source: str) -> dict[str, str]:
    dsn = f"{PG_DSN} dbname=postgres"
    extra = {
        "KOSMOS__APPROVAL_KEY": KEY,
        "KOSMOS__APPROVALS__CLI_IDENTITIES": _identities(),
        "KOSMOS__JOBS__RETRY_INTERVALS": "[]",
    }
    for name, queue in (("POSTGRES", "kosmos-default"), ("HELD", HELD_QUEUE)):
        prefix = f"KOSMOS__COMPONENTS__{name}__"
        extra |= {
            prefix + "KIND": "postgres",
            prefix + "DSN": dsn,
            prefix + "DATABASES": f"[{source}]",
            prefix + "CONTINUOUS": "false",
            prefix + "FREQUENCY": "1h",
            prefix + "RETENTION": "30d",
            prefix + "QUEUE": queue,
        }
    return extra


# -- talking to the bot as Slack does -------------------------------------------------------


def slash(world: World, text: str, user: str) -> BotAnswer:
    return slash_answer(
        world.fake, world.bot.url, SECRET, text, command="/restore", user=user, channel=CHANNEL
    )


def click(world: World, request_id: str, user: str, action: str, reason: str = "") -> BotAnswer:
    """A signed block_actions payload, as Slack posts a button click on the card."""
    card_ts = card_of(world, request_id)[0]
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "TKOSMOS"},
        "api_app_id": "AKOSMOS",
        "token": "legacy-unused",
        "team": {"id": "TKOSMOS", "domain": "kosmos"},
        "container": {"type": "message", "message_ts": card_ts, "channel_id": CHANNEL},
        "channel": {"id": CHANNEL, "name": "kosmos-ops"},
        "message": {"ts": card_ts, "type": "message", "text": "card"},
        "trigger_id": f"{time.time_ns()}.TKOSMOS.{user}",
        "response_url": world.fake.response_url(user),
        "state": {
            "values": {
                "restore_reason": {"reason": {"type": "plain_text_input", "value": reason or None}}
            }
        },
        "actions": [
            {
                "action_id": f"restore_{action}",
                "block_id": "restore_decision",
                "type": "button",
                "value": request_id,
                "action_ts": str(time.time()),
            }
        ],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    return post_to_bot(world.bot.url, body, SECRET)


def request_from(answer: BotAnswer) -> str:
    assert answer.status == 200, answer
    match = REQUEST_ID.search(json.dumps(answer.body))
    assert match, answer.body
    return match.group(0)


def card_of(world: World, request_id: str) -> tuple[str, str]:
    """(ts, text of all blocks) of the request's card in the fake."""
    for (channel, ts), message in list(world.fake.messages.items()):
        blocks = json.dumps(message.get("blocks") or "")
        if channel == CHANNEL and f"`{request_id}`" in blocks and "thread_ts" not in message:
            return ts, blocks
    raise AssertionError(f"no card for {request_id}")


def card_text(world: World, request_id: str) -> str:
    return card_of(world, request_id)[1]


def ephemerals(world: World, user: str) -> list[str]:
    calls = world.fake.calls_to("chat.postEphemeral")
    return [
        json.dumps(c.params.get("blocks") or c.params.get("text"))
        for c in calls
        if c.params.get("user") == user
    ]


def restore_ops(world: World) -> list[dict[str, Any]]:
    from workers import queues

    ctx = world.ctx()
    return [
        o for o in queues.recent_operations(ctx.redis, ctx.settings, 200) if o["kind"] == "restore"
    ]


def audit_actions(world: World) -> list[str]:
    return [r.action.value for r in audit_of(world.ctx()).tail(500)]


def run_worker(world: World, queue: str, *, burst: bool) -> subprocess.Popen[bytes]:
    log = open(world.folder / "worker.log", "ab")  # noqa: SIM115 - the child owns it
    argv = ["kosmos-backup", "worker", "--queues", queue] + (["--burst"] if burst else [])
    return subprocess.Popen(argv, env=world.env, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def table_facts(database: str) -> list[tuple[Any, ...]]:
    return rows_of(
        database,
        "SELECT count(*), md5(string_agg(id::text || name, ',' ORDER BY id)) FROM accounts",
    )
