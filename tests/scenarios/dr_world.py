"""The test stack for DR scenarios: a source database, S3 (moto), Redis, the fake Slack API,
signed requests to the bot, RQ workers, and helpers to follow a run (PostgreSQL prefix kb_f_)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from tests.conftest import EXAMPLE_CONFIG, PG_DSN, REDIS_DB, db_prefix
from tests.fakes.slack import BotAnswer, FakeSlack, post_to_bot, slash_answer
from tests.scenarios.bot_process import SECRET, bot_env
from tests.sync import wait_until as wait_until  # the one copy; re-exported for callers
from workers.config_loader import parse_settings
from workers.context import Context
from workers.core.runbook_run import RunState
from workers.runbooks import flow as runbook_flow

PREFIX = db_prefix("kb_f_")
CHANNEL = "COPS"
GROUPS = {
    "platform": ["UVIEW", "UOPS", "UIC", "ULEAD"],
    "sre": ["UOPS"],
    "sre-leads": ["ULEAD"],
    "incident-commanders": ["UIC"],
}
SOURCE_SQL = """
CREATE TABLE accounts (id int PRIMARY KEY, name text, balance numeric(12, 2));
INSERT INTO accounts SELECT g, md5(g::text), g * 1.5 FROM generate_series(1, 3000) AS g;
CREATE TABLE events (at timestamptz, kind text);
INSERT INTO events SELECT now() - g * interval '1 minute', 'tick' FROM generate_series(1, 500) g;
"""
T = TypeVar("T")


def admin(dbname: str = "postgres") -> psycopg.Connection[Any]:
    """An autocommit connection to the machine's PostgreSQL."""
    return psycopg.connect(f"{PG_DSN} dbname={dbname}", autocommit=True)


def database_exists(name: str) -> bool:
    """Whether a database exists."""
    with admin() as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found is not None


def drop_database(name: str) -> None:
    """Drop one of our databases."""
    with admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def fresh_name(tag: str) -> str:
    """A database name with our prefix."""
    return f"{PREFIX}{tag}_{secrets.token_hex(3)}"


@dataclass
class DrWorld:
    """One scenario's stack and the names to clean up."""

    fake: FakeSlack
    env: dict[str, str]
    folder: Path
    source: str
    bot_url: str = ""
    names: list[str] = field(default_factory=list)
    _store: Any = None

    @property
    def settings(self) -> Any:
        return parse_settings(EXAMPLE_CONFIG.read_text(), self.env)

    def ctx(self) -> Context:
        return Context(self.settings)

    def store(self) -> Any:
        """The run store, built once (polling builds no new clients)."""
        if self._store is None:
            self._store = runbook_flow.runs(self.ctx())
        return self._store

    def scratch(self, tag: str = "scratch") -> str:
        """A scratch database name this world drops at the end."""
        self.names.append(fresh_name(tag))
        return self.names[-1]

    def run(self, run_id: str) -> RunState:
        return self.store().load(run_id)  # type: ignore[no-any-return]


def world_env(
    fake: FakeSlack, folder: Path, s3_url: str, bucket: str, source: str, **extra: str
) -> dict[str, str]:
    """Bot and worker environment: S3 storage, one postgres component, quick job timings."""
    env = bot_env(fake.api_url, f"redis://127.0.0.1:6379/{REDIS_DB}", folder / "unused")
    component = "KOSMOS__COMPONENTS__POSTGRES__"
    env.update(
        {
            "KOSMOS__STORAGE__URL": f"s3://{bucket}/kosmos",
            "KOSMOS__STORAGE__ENDPOINT_URL": s3_url,
            "KOSMOS__STORAGE__REGION": "us-east-1",
            "KOSMOS__STORAGE__ACCESS_KEY_ID": "test",
            "KOSMOS__STORAGE__SECRET_ACCESS_KEY": "test",
            "KOSMOS__STORAGE__MAX_ATTEMPTS": "2",
            component + "DSN": f"{PG_DSN} dbname=postgres",
            component + "DATABASES": f"[{source}]",
            component + "CONTINUOUS": "false",
            "KOSMOS__JOBS__HEARTBEAT": "1s",
            "KOSMOS__JOBS__ABANDONED_AFTER": "4s",
            "KOSMOS__JOBS__SCHEDULER_TICK": "1s",
            "KOSMOS__JOBS__RETRY_INTERVALS": "[]",
            "KOSMOS__SLACK__CHANNEL": CHANNEL,
        }
    )
    for name in ("MINIO", "ETCD", "KUBERNETES", "SECRETS"):
        env[f"KOSMOS__COMPONENTS__{name}__ENABLED"] = "false"
    env.update(extra)
    return env


@contextlib.contextmanager
def source_database() -> Iterator[str]:
    """The database every scenario backs up and restores."""
    name = fresh_name("src")
    with admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with admin(name) as conn:
        conn.execute(SOURCE_SQL)  # type: ignore[arg-type]
    try:
        yield name
    finally:
        drop_database(name)


# -- Slack, as Slack talks to the bot ----------------------------------------------------------


def slash(world: DrWorld, text: str, user: str, channel: str = CHANNEL) -> BotAnswer:
    """A signed ``/dr …`` (or other) command."""
    command, _, rest = text.partition(" ")
    return slash_answer(
        world.fake, world.bot_url, SECRET, rest, command=command, user=user, channel=channel
    )


def click(
    world: DrWorld, run_id: str, step_id: str, action_id: str, user: str, note: str = ""
) -> BotAnswer:
    """A signed block_actions payload: a button on a step card, with the note field's text."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "TKOSMOS"},
        "api_app_id": "AKOSMOS",
        "token": "legacy-unused",
        "team": {"id": "TKOSMOS", "domain": "kosmos"},
        "container": {"type": "message", "message_ts": "1.1", "channel_id": CHANNEL},
        "channel": {"id": CHANNEL, "name": "incident"},
        "message": {"ts": "1.1", "type": "message", "text": "card"},
        "trigger_id": f"{time.time_ns()}.TKOSMOS.{user}",
        "response_url": world.fake.response_url(user),
        "state": {
            "values": {"dr_note": {"note": {"type": "plain_text_input", "value": note or None}}}
        },
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"dr_actions_{step_id}",
                "type": "button",
                "value": json.dumps({"run": run_id, "step": step_id}, separators=(",", ":")),
                "action_ts": str(time.time()),
            }
        ],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    return post_to_bot(world.bot_url, body, SECRET)


def answer_text(answer: BotAnswer) -> str:
    """Everything the bot answered, as one string."""
    return json.dumps(answer.body, ensure_ascii=False)


def messages_text(world: DrWorld, *, thread: bool | None = None) -> str:
    """Every message in the fake (top level, thread replies, or both)."""
    found = []
    for message in list(world.fake.messages.values()):
        if thread is None or bool(message.get("thread_ts")) == thread:
            found.append(
                json.dumps(message.get("blocks") or message.get("text"), ensure_ascii=False)
            )
    return "\n".join(found)


def ephemerals(world: DrWorld, user: str) -> list[str]:
    """Ephemeral texts the bot sent ``user`` through chat.postEphemeral."""
    return [
        json.dumps(call.params, ensure_ascii=False)
        for call in world.fake.calls_to("chat.postEphemeral")
        if call.params.get("user") == user
    ]


@contextlib.contextmanager
def process(world: DrWorld, name: str, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """A kosmos-backup process in its own session (so SIGKILL takes its work horse too)."""
    with open(world.folder / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            ["kosmos-backup", *args],
            env=world.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        kill(proc, signal.SIGTERM)


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal a process's whole session and wait for it (SIGKILL after 15 s)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_cli(
    world: DrWorld, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``kosmos-backup`` with the world's environment (and ``env`` on top)."""
    return subprocess.run(
        ["kosmos-backup", *args],
        env={**world.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def cli_identities(**people: tuple[str, str]) -> str:
    """``approvals.cli_identities`` for ``user=(token, role)`` pairs, as an override value."""
    entries = []
    for user, (token, role) in people.items():
        digest = hashlib.sha256(token.encode()).hexdigest()
        roles = f", roles: [{role}]" if role else ""
        entries.append(f"{user}: {{name: {user.lower()}, token_sha256: {digest}{roles}}}")
    return "{" + ", ".join(entries) + "}"


def as_person(user: str, token: str) -> dict[str, str]:
    """The environment that says who runs a CLI command: KOSMOS_USER and its token."""
    return {"KOSMOS_USER": user, "KOSMOS_USER_TOKEN": token}
