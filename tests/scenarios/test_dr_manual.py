"""Manual steps driven by signed button payloads, role refusals, and a failing check that
stops the run with a clear message: the bot under gunicorn, the fake Slack API, a worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import s3_client
from tests.fakes.slack import FakeSlack
from tests.scenarios.bot_process import running_bot, running_worker
from tests.scenarios.dr_world import (
    CHANNEL,
    GROUPS,
    DrWorld,
    answer_text,
    click,
    drop_database,
    ephemerals,
    slash,
    source_database,
    wait_until,
    world_env,
)
from tests.services import MotoServer
from workers import components
from workers.core.runbook_run import Awaiting, RunState, RunStatus, StepStatus

CUTOVER = """
name: cutover
title: Cut over to the restored database
steps:
  - id: freeze
    title: Freeze writes
    kind: manual
    commands: ["kubectl scale -n kosmos-agents --replicas=0 deployment --all"]
  - id: reachable
    title: The database answers
    kind: check
    depends_on: [freeze]
    probes:
      - {type: sql, query: "select 1", expect: 1}
  - id: dns
    title: Update DNS
    kind: manual
    depends_on: [reachable]
  - id: notify
    title: Notify users
    kind: manual
    depends_on: [dns]
"""
FAILING = """
name: failing-check
title: A drill whose check fails
steps:
  - id: pick
    title: Pick the backup
    kind: job
    operation: catalog.pick
    params: {component: postgres}
  - id: verify
    title: Count the accounts
    kind: check
    depends_on: [pick]
    probes:
      - {type: sql, label: accounts counted, query: "select 1", expect: 2}
  - id: never
    title: Never reached
    kind: manual
    depends_on: [verify]
  - id: teardown
    title: Teardown still runs
    kind: job
    depends_on: [never]
    always: true
    operation: catalog.pick
    params: {component: postgres}
"""

GATED = """
name: gated
title: A gated cutover
steps:
  - id: gate
    title: Two people agree
    kind: approval
    component: postgres
  - id: after
    title: Cut over
    kind: manual
    depends_on: [gate]
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrWorld]:
    folder = tmp_path_factory.mktemp("manual")
    (folder / "runbooks").mkdir()
    (folder / "runbooks" / "cutover.yaml").write_text(CUTOVER)
    (folder / "runbooks" / "failing-check.yaml").write_text(FAILING)
    (folder / "runbooks" / "gated.yaml").write_text(GATED)
    fake = FakeSlack(usergroups={k: list(v) for k, v in GROUPS.items()}).start()
    server = MotoServer(log_dir=folder).start()
    s3_client(server.url).create_bucket(Bucket="manual")
    try:
        with source_database() as source:
            env = world_env(
                fake,
                folder,
                server.url,
                "manual",
                source,
                KOSMOS__DR__RUNBOOKS_DIR=str(folder / "runbooks"),
            )
            world = DrWorld(fake, env, folder, source)
            world.ctx().redis.flushdb()
            components.backup(world.ctx(), "postgres")
            with (
                running_bot(env, folder / "bot.log") as bot,
                running_worker(env, folder / "worker.log", "kosmos-default"),
            ):
                world.bot_url = bot.url
                yield world
            for name in world.names:
                drop_database(name)
    finally:
        server.stop()
        fake.stop()


def started(world: DrWorld, text: str, user: str) -> str:
    previous = world.store().active(CHANNEL)
    answer = slash(world, text, user)
    assert answer.status == 200 and answer.seconds < 3, answer
    return wait_until(
        lambda: (now := world.store().active(CHANNEL)) != previous and now,
        30,
        "the run to start",
    )


def waiting(world: DrWorld, run_id: str, step_id: str) -> RunState | None:
    run = world.run(run_id)
    return run if run.steps[step_id].awaiting == Awaiting.CONFIRMATION else None


def card(world: DrWorld, step_title: str) -> dict[str, Any]:
    """The step's card in the board's thread ({} until it is posted)."""
    for message in list(world.fake.messages.values()):
        if message.get("thread_ts") and step_title in json.dumps(message.get("blocks")):
            return message
    return {}


def test_manual_steps_are_answered_with_signed_buttons(world: DrWorld) -> None:
    run_id = started(world, "/dr start cutover", "UOPS")
    wait_until(lambda: waiting(world, run_id, "freeze"), 30, "freeze to wait")
    world.fake.wait_for(lambda: "dr_done" in json.dumps(card(world, "Freeze writes")), 15)
    shown = json.dumps(card(world, "Freeze writes")["blocks"])
    assert "kubectl scale -n kosmos-agents --replicas=0 deployment --all" in shown

    # A viewer may not answer; the step keeps waiting.
    assert click(world, run_id, "freeze", "dr_done", "UVIEW").status == 200
    world.fake.wait_for(lambda: bool(ephemerals(world, "UVIEW")), 10)
    assert "you may not use dr confirm" in ephemerals(world, "UVIEW")[-1]
    assert world.run(run_id).steps["freeze"].status == StepStatus.RUNNING
    # Skip needs a reason.
    click(world, run_id, "freeze", "dr_skip", "UOPS")
    world.fake.wait_for(lambda: any("needs a reason" in e for e in ephemerals(world, "UOPS")), 10)
    # Done, by an operator.
    assert click(world, run_id, "freeze", "dr_done", "UOPS").status == 200
    run = wait_until(lambda: waiting(world, run_id, "dns"), 60, "the check, then dns to wait")
    assert run.steps["freeze"].status == StepStatus.DONE
    assert run.steps["freeze"].confirmed_by == "UOPS"
    assert run.steps["reachable"].status == StepStatus.DONE
    world.fake.wait_for(lambda: "dr_done" not in json.dumps(card(world, "Freeze writes")), 15)
    assert "confirmed by <@UOPS>" in json.dumps(card(world, "Freeze writes")["blocks"])
    # Skip with a reason, by an incident commander.
    click(world, run_id, "dns", "dr_skip", "UIC", note="DNS is managed by the provider")
    wait_until(lambda: waiting(world, run_id, "notify"), 30, "notify to wait")
    assert world.run(run_id).steps["dns"].note == "DNS is managed by the provider"
    # Failed with a note stops the run.
    click(world, run_id, "notify", "dr_failed", "UIC", note="status page is down")
    run = wait_until(
        lambda: (r := world.run(run_id)).finished and r.report and r, 60, "the run to end"
    )
    assert run.status == RunStatus.FAILED
    assert run.failure == "step 'notify' failed: status page is down"
    world.fake.wait_for(lambda: "status page is down" in board_text(world, "Cut over"), 15)


def board_text(world: DrWorld, title: str) -> str:
    boards = [
        m
        for m in world.fake.messages.values()
        if not m.get("thread_ts") and title in json.dumps(m.get("blocks"), ensure_ascii=False)
    ]
    return json.dumps([b.get("blocks") for b in boards], ensure_ascii=False)


def test_a_failing_check_stops_the_run_with_a_clear_message(world: DrWorld) -> None:
    run_id = started(world, "/dr start failing-check", "UIC")
    run = wait_until(
        lambda: (r := world.run(run_id)).finished and r.report and r, 60, "the run to end"
    )
    assert run.status == RunStatus.FAILED
    message = "step 'verify' failed: check failed: accounts counted: "
    assert run.failure is not None and run.failure.startswith(message)
    assert "got 1, expected 2" in run.failure
    assert run.steps["never"].status == StepStatus.SKIPPED
    assert run.steps["teardown"].status == StepStatus.DONE  # always runs
    world.fake.wait_for(lambda: "got 1, expected 2" in board_text(world, "A drill whose"), 15)
    assert "❌ 2. Count the accounts" in board_text(world, "A drill whose")
    status = slash(world, f"/dr status {run_id}", "UVIEW")
    assert "got 1, expected 2" in answer_text(status)


def test_abort_needs_a_reason_and_the_role(world: DrWorld) -> None:
    run_id = started(world, "/dr start cutover", "UIC")
    wait_until(lambda: waiting(world, run_id, "freeze"), 30, "freeze to wait")
    assert "needs a reason" in answer_text(slash(world, "/dr abort", "UIC"))
    assert "operators or incident_commanders" in answer_text(
        slash(world, "/dr abort -- not needed", "UVIEW")
    )
    aborted = slash(world, "/dr abort -- false alarm", "UIC")
    assert "aborted" in answer_text(aborted)
    run = wait_until(lambda: (r := world.run(run_id)).finished and r, 30, "the abort")
    assert run.status == RunStatus.ABORTED and run.abort_reason == "false alarm"


def test_an_approval_step_follows_the_two_person_rules(world: DrWorld) -> None:
    run_id = started(world, "/dr start gated", "UOPS")
    wait_until(
        lambda: world.run(run_id).steps["gate"].awaiting == Awaiting.APPROVAL, 30, "the gate"
    )
    world.fake.wait_for(lambda: "dr_approve" in json.dumps(card(world, "Two people agree")), 15)
    click(world, run_id, "gate", "dr_approve", "UOPS")  # an operator, not an approver
    world.fake.wait_for(lambda: any("restore approve" in e for e in ephemerals(world, "UOPS")), 10)
    assert world.run(run_id).steps["gate"].status == StepStatus.RUNNING
    click(world, run_id, "gate", "dr_approve", "ULEAD")
    run = wait_until(lambda: waiting(world, run_id, "after"), 30, "the gate to open")
    assert run.steps["gate"].status == StepStatus.DONE
    assert run.steps["gate"].outputs["approved_by"] == "ULEAD"
