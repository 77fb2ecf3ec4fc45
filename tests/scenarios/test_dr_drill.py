"""The monthly DR test as the team lives it: ``/dr start dr-test`` in the incident channel,
a real RQ worker restoring the latest PostgreSQL backup into a scratch database, the checks,
the board updated in place, the report and its chart uploaded to (fake) Slack, and the
scheduler starting the next drill when one is due."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import s3_client
from tests.fakes.slack import FakeSlack
from tests.scenarios.bot_process import running_bot, running_worker
from tests.scenarios.dr_world import (
    CHANNEL,
    GROUPS,
    DrWorld,
    answer_text,
    database_exists,
    drop_database,
    fresh_name,
    messages_text,
    slash,
    source_database,
    wait_until,
    world_env,
)
from tests.services import MotoServer
from workers import components as engine
from workers.context import Context
from workers.core.runbook_run import RunStatus, StepStatus
from workers.runbooks import drills
from workers.runbooks import durability as dr
from workers.runbooks import flow as runbook_flow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrWorld]:
    folder = tmp_path_factory.mktemp("drill")
    fake = FakeSlack(usergroups={k: list(v) for k, v in GROUPS.items()}).start()
    server = MotoServer(log_dir=folder).start()
    s3_client(server.url).create_bucket(Bucket="drill")
    try:
        with source_database() as source:
            scheduled = fresh_name("sched")
            params = f"{{scratch_database: {scheduled}}}"
            env = world_env(
                fake, folder, server.url, "drill", source, KOSMOS__DR__DR_TEST_PARAMS=params
            )
            world = DrWorld(fake, env, folder, source, names=[scheduled])
            world.ctx().redis.flushdb()
            engine.backup(world.ctx(), "postgres")
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


def finished_with_report(world: DrWorld, run_id: str) -> bool:
    run = world.run(run_id)
    return run.finished and bool(run.report)


def test_people_without_the_role_and_direct_messages_are_refused(world: DrWorld) -> None:
    viewer = slash(world, "/dr start dr-test", "UVIEW")
    assert viewer.status == 200
    assert "operators or incident_commanders" in answer_text(viewer)
    approver = slash(world, "/dr start dr-test", "ULEAD")
    assert "operators or incident_commanders" in answer_text(approver)
    direct = slash(world, "/dr start dr-test", "UOPS", channel="D0PRIVATE")
    assert "must be run in a channel" in answer_text(direct)
    unknown = slash(world, "/dr start no-such-runbook", "UOPS")
    assert "no runbook 'no-such-runbook'" in answer_text(unknown)
    assert not runbook_flow.runs(world.ctx()).recent()


def test_the_monthly_drill_end_to_end_in_the_channel(world: DrWorld) -> None:
    scratch = world.scratch()
    answer = slash(world, f"/dr start dr-test --param scratch_database={scratch}", "UIC")
    assert answer.status == 200 and answer.seconds < 3, answer
    assert "starting Monthly DR test" in answer_text(answer)
    runs = runbook_flow.runs(world.ctx())
    run_id = wait_until(lambda: runs.active(CHANNEL), 30, "the run to start")
    wait_until(lambda: finished_with_report(world, run_id), 90, "the drill to end")
    run = world.run(run_id)
    assert run.status == RunStatus.DONE, run.failure
    # The real restore went into the scratch database, matched the dump, and was torn down.
    restore = run.steps["restore-postgres"]
    assert restore.outputs["checksums_matched"] is True
    assert restore.outputs["rows"] == 3500 and restore.outputs["tables"] == 2
    assert restore.outputs["created_databases"] == [scratch]
    assert run.steps["teardown"].outputs == {"dropped": [scratch]}
    assert not database_exists(scratch)
    assert [p.ok for p in run.steps["verify-suite"].probes] == [True, True, True]
    # Components without an engine here are skipped, not waited on.
    assert run.steps["restore-etcd"].status == StepStatus.SKIPPED
    # The report: measured RTO and achieved RPO against the objectives.
    report = run.report
    assert report["rto_objective_seconds"] == 4 * 3600 and report["rto_met"] is True
    assert 0 < report["rto_seconds"] < 90
    assert report["rpo_seconds"] > 0 and report["rpo_met"] is True
    # The board: one message, updated in place to the end, with the RTO clock.
    world.fake.wait_for(lambda: "✅ Monthly DR test" in messages_text(world, thread=False), 15)
    board = [
        m
        for m in world.fake.messages.values()
        if "Monthly DR test" in json.dumps(m) and not m.get("thread_ts")
    ]
    assert len(board) == 1
    board_text = json.dumps(board[0]["blocks"], ensure_ascii=False)
    assert "✅ 3. Restore PostgreSQL into a scratch database" in board_text
    assert "⏭ 4. Restore K3s etcd" in board_text and "RTO clock" in board_text
    assert run.board_ts == board[0]["ts"]
    # Step details in its thread: probe results and outputs.
    thread = messages_text(world, thread=True)
    assert "scratch database answers" in thread and "checksums_matched" in thread
    # The report and its chart, uploaded with the two-step external upload.
    world.fake.wait_for(lambda: bool(world.fake.calls_to("files.completeUploadExternal")), 15)
    complete = world.fake.calls_to("files.completeUploadExternal")[-1].params
    assert complete.get("channel_id") == CHANNEL
    assert "RTO" in str(complete.get("initial_comment"))
    uploads = list(world.fake.uploads.values())
    assert any(body.startswith(b"\x89PNG") for body in uploads)
    assert any(b"## Verification" in body for body in uploads)
    # The Markdown report is in the storage beside the run's state.
    store = world.ctx().repo.store
    assert b"measured RTO" in store.get_bytes(f"_dr/{run_id}/report.md")
    assert store.exists(f"_dr/{run_id}/state.json")


def test_backup_status_shows_the_last_drill(world: DrWorld) -> None:
    last = drills.last_drill(world.ctx())
    assert last is not None and last["result"] == "done"
    answer = slash(world, "/backup status", "UVIEW")
    assert "last DR drill" in answer_text(answer) and "measured RTO" in answer_text(answer)


def test_the_scheduler_starts_the_drill_when_it_is_due(world: DrWorld) -> None:
    ctx = world.ctx()
    settings = ctx.settings
    assert settings.dr.dr_test_frequency == timedelta(days=30)
    store = runbook_flow.runs(ctx)
    last = datetime.fromisoformat(str(store.last_drill()["finished_at"]))  # type: ignore[index]
    assert dr.upkeep(ctx) == []  # a drill ran just now: the next is a month away
    later = Context(settings, clock=lambda: datetime.now(UTC) + timedelta(days=31))
    store.client.set(store.key("drill-started"), last.isoformat())
    started = dr.upkeep(later)
    assert len(started) == 1
    run = wait_until(
        lambda: finished_with_report(world, started[0]) and world.run(started[0]),
        90,
        "the scheduled drill to end",
    )
    assert run.started_by == "scheduler" and run.runbook.name == "dr-test"
    assert run.chat.source == "scheduler" and run.chat.channel == CHANNEL
    assert run.status == RunStatus.DONE, run.failure
    assert run.inputs["scratch_database"] == world.names[0]
    assert not database_exists(world.names[0])
    assert dr.upkeep(later) == []  # not twice
