"""What the channel hears during a run: a gated step's approval card with its Approve / Deny,
a failed step announced (not only a mark on the board), and the end with the report's files
and where they are stored. The bot under gunicorn, the fake Slack Web API, a worker and the
scheduler (which moves a gated step along with its restore)."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import s3_client
from tests.fakes.slack import BotAnswer, FakeSlack, post_to_bot
from tests.scenarios.bot_process import SECRET, running_bot, running_worker
from tests.scenarios.dr_world import (
    CHANNEL,
    GROUPS,
    DrWorld,
    drop_database,
    process,
    slash,
    source_database,
    wait_until,
    world_env,
)
from tests.services import MotoServer
from workers import components
from workers.core.runbook_run import RunStatus, StepStatus

GATED = """
name: gated-restore
title: A gated restore
inputs:
  scratch: {}
steps:
  - id: restore
    title: Restore into a scratch database
    kind: job
    operation: postgres.restore
    approval: true
    params: {component: postgres, backup: latest, target_database: "${inputs.scratch}"}
  - id: count
    title: Count the accounts
    kind: check
    depends_on: [restore]
    probes:
      - type: sql
        label: accounts counted
        database: ${inputs.scratch}
        query: select count(*) from accounts
        expect: 2
"""

QUICK = """
name: quick-check
title: A quick check
inputs:
  database: {}
steps:
  - id: count
    title: Count the accounts
    kind: check
    probes:
      - type: sql
        label: accounts counted
        database: ${inputs.database}
        query: select count(*) from accounts
        expect: 3000
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrWorld]:
    folder = tmp_path_factory.mktemp("news")
    (folder / "runbooks").mkdir()
    (folder / "runbooks" / "gated-restore.yaml").write_text(GATED)
    (folder / "runbooks" / "quick-check.yaml").write_text(QUICK)
    fake = FakeSlack(usergroups={k: list(v) for k, v in GROUPS.items()}).start()
    server = MotoServer(log_dir=folder).start()
    s3_client(server.url).create_bucket(Bucket="news")
    try:
        with source_database() as source:
            env = world_env(
                fake,
                folder,
                server.url,
                "news",
                source,
                KOSMOS__DR__RUNBOOKS_DIR=str(folder / "runbooks"),
                KOSMOS__APPROVAL_KEY="news-scenario-approval-key-0123456789",
            )
            world = DrWorld(fake, env, folder, source)
            world.ctx().redis.flushdb()
            components.backup(world.ctx(), "postgres")
            with (
                running_bot(env, folder / "bot.log") as bot,
                running_worker(env, folder / "worker.log", "kosmos-default"),
                process(world, "scheduler", "scheduler"),
            ):
                world.bot_url = bot.url
                yield world
            for name in world.names:
                drop_database(name)
    finally:
        server.stop()
        fake.stop()


def top_level(world: DrWorld) -> list[dict[str, Any]]:
    """Messages in the channel itself (not in a thread)."""
    return [
        m
        for (channel, _), m in list(world.fake.messages.items())
        if channel == CHANNEL and not m.get("thread_ts")
    ]


def text_of(message: dict[str, Any]) -> str:
    return json.dumps([message.get("text"), message.get("blocks")], ensure_ascii=False)


def approve_on_card(world: DrWorld, card: dict[str, Any], request_id: str, user: str) -> BotAnswer:
    """A signed click on the restore card's Approve button, as Slack posts it."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "TKOSMOS"},
        "api_app_id": "AKOSMOS",
        "token": "legacy-unused",
        "team": {"id": "TKOSMOS", "domain": "kosmos"},
        "container": {"type": "message", "message_ts": card["ts"], "channel_id": CHANNEL},
        "channel": {"id": CHANNEL, "name": "incident"},
        "message": {"ts": card["ts"], "type": "message", "text": "card"},
        "trigger_id": f"{time.time_ns()}.TKOSMOS.{user}",
        "response_url": world.fake.response_url(user),
        "state": {"values": {}},
        "actions": [
            {
                "action_id": "restore_approve",
                "block_id": "restore_decision",
                "type": "button",
                "value": request_id,
                "action_ts": str(time.time()),
            }
        ],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    return post_to_bot(world.bot_url, body, SECRET)


def test_the_channel_sees_the_gate_card_the_failure_and_the_report(world: DrWorld) -> None:
    scratch = world.scratch("gated")
    answer = slash(world, f"/dr start gated-restore --param scratch={scratch}", "UOPS")
    assert answer.status == 200 and answer.seconds < 3, answer
    store = world.store()
    run_id = wait_until(lambda: store.active(CHANNEL), 30, "the run to start")
    request_id = wait_until(
        lambda: world.run(run_id).steps["restore"].approval_id, 30, "the gate's request"
    )
    # The gate's restore request has its own card in the channel, with Approve and Deny.
    card = wait_until(
        lambda: next((m for m in top_level(world) if request_id in text_of(m)), None),
        30,
        "the approval card in the channel",
    )
    assert "restore_approve" in text_of(card) and "restore_deny" in text_of(card)
    assert scratch in text_of(card)
    assert approve_on_card(world, card, request_id, "ULEAD").status == 200
    run = wait_until(
        lambda: (r := world.run(run_id)).finished and r.report and r, 120, "the run to end"
    )
    assert run.steps["restore"].status == StepStatus.DONE
    assert run.steps["restore"].confirmed_by == "ULEAD"
    assert run.status == RunStatus.FAILED
    # The failed check is announced in the channel, not only marked on the board.
    heard = f"A gated restore ({run_id}): step 2. Count the accounts failed"
    announced = wait_until(
        lambda: next((m for m in top_level(world) if heard in text_of(m)), None),
        20,
        "the failure announced",
    )
    said = text_of(announced)
    assert "check failed: accounts counted: " in said and "got 3000, expected 2" in said
    assert "hint: see the step's probe results in the board's thread" in said
    # The end: the report's files uploaded, the comment saying where they are stored.
    world.fake.wait_for(lambda: bool(world.fake.calls_to("files.completeUploadExternal")), 20)
    comment = str(world.fake.calls_to("files.completeUploadExternal")[-1].params["initial_comment"])
    assert "A gated restore failed" in comment
    assert f"report markdown: _dr/{run_id}/report.md in s3://news/kosmos" in comment
    assert b"## Verification" in world.ctx().repo.store.get_bytes(f"_dr/{run_id}/report.md")


def test_a_rate_limited_board_still_shows_how_the_run_ended(world: DrWorld) -> None:
    # Slack answers the board's and the cards' updates with 429 for a while: the run's
    # events stay pending and the board is shown again after Retry-After, not dropped.
    world.fake.rate_limit("chat.update", times=6, retry_after=1)
    answer = slash(world, f"/dr start quick-check --param database={world.source}", "UOPS")
    assert answer.status == 200, answer
    store = world.store()
    run_id = wait_until(
        lambda: next((r.run_id for r in store.recent() if r.runbook.name == "quick-check"), None),
        30,
        "the run to start",
    )
    run = wait_until(lambda: (r := world.run(run_id)).finished and r, 60, "the run to end")
    assert run.status == RunStatus.DONE

    def board() -> dict[str, Any] | None:
        return next((m for m in top_level(world) if f"`{run_id}`" in text_of(m)), None)

    shown = wait_until(lambda: (b := board()) and b["text"].endswith(": done") and b, 40, "the end")
    assert shown["text"] == "✅ A quick check: done"
    refused = [c for c in world.fake.calls_to("chat.update", ok_only=False) if c.status == 429]
    assert len(refused) == 6
