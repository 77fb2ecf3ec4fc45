"""Durable runs: a worker killed mid-step, and Redis flushed mid-run, and the run goes on.

Real RQ worker processes (killed with SIGKILL), the real scheduler (its tick resumes runs
whose step worker died), S3 on moto, and the CLI for ``dr resume`` and a person's answer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import s3_client
from tests.fakes.slack import FakeSlack
from tests.scenarios.dr_world import (
    DrWorld,
    admin,
    as_person,
    cli_identities,
    database_exists,
    drop_database,
    kill,
    process,
    run_cli,
    source_database,
    wait_until,
    world_env,
)
from tests.services import MotoServer
from workers import engine, runbook_flow
from workers.core.errors import KosmosError
from workers.core.runbook_run import Awaiting, RunState, RunStatus, StepStatus
from workers.state.redis_state import RedisState

SLOW = """
name: slow
title: Slow restore drill
inputs:
  scratch_database: {}
steps:
  - id: pick
    title: Pick the backup
    kind: job
    operation: catalog.pick
    params: {component: postgres}
  - id: slow-check
    title: A check that takes a while
    kind: check
    depends_on: [pick]
    probes:
      - type: sql
        query: select 1 from pg_advisory_xact_lock_shared(4242), pg_sleep(2)
        expect: 1
        timeout: 60s
  - id: restore
    title: Restore into the scratch database
    kind: job
    depends_on: [slow-check]
    operation: postgres.restore
    params:
      backup: ${steps.pick.outputs.backup_id}
      target_database: ${inputs.scratch_database}
  - id: after
    title: The restored tables are there
    kind: check
    depends_on: [restore]
    probes:
      - type: sql
        database: ${inputs.scratch_database}
        query: select count(*) from pg_catalog.pg_tables where schemaname = 'public'
        expect: ${steps.restore.outputs.tables}
  - id: teardown
    title: Drop the scratch database
    kind: job
    depends_on: [after]
    always: true
    operation: postgres.drop-database
    params: {database: "${inputs.scratch_database}"}
"""
IC_TOKEN = "incident-commander-token"
CHECK_GATE = 4242  # the advisory lock the slow check takes (shared) before it answers
BIG_SQL = """
CREATE TABLE IF NOT EXISTS big (id int PRIMARY KEY, body text);
INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 150000) AS g;
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrWorld]:
    folder = tmp_path_factory.mktemp("resume")
    (folder / "runbooks").mkdir()
    (folder / "runbooks" / "slow.yaml").write_text(SLOW)
    fake = FakeSlack().start()
    server = MotoServer(log_dir=folder).start()
    s3_client(server.url).create_bucket(Bucket="resume")
    try:
        with source_database() as source:
            with admin(source) as conn:
                conn.execute(BIG_SQL)  # type: ignore[arg-type]
            env = world_env(
                fake,
                folder,
                server.url,
                "resume",
                source,
                KOSMOS__DR__RUNBOOKS_DIR=str(folder / "runbooks"),
                KOSMOS__APPROVALS__CLI_IDENTITIES=cli_identities(
                    UIC=(IC_TOKEN, "incident_commanders")
                ),
            )
            world = DrWorld(fake, env, folder, source)
            world.ctx().redis.flushdb()
            engine.backup(world.ctx(), "postgres")
            yield world
            for name in world.names:
                drop_database(name)
    finally:
        server.stop()
        fake.stop()


def kill_worker_and_horse(world: DrWorld, proc: subprocess.Popen[bytes], op_id: str) -> None:
    """SIGKILL the worker and its work horse (RQ puts the horse in a session of its own)."""
    record = RedisState(world.ctx().redis, world.settings.redis.key_prefix).operation(op_id) or {}
    with contextlib.suppress(ProcessLookupError, KeyError):
        os.kill(int(record["pid"]), signal.SIGKILL)
    kill(proc)


def start(world: DrWorld, scratch: str) -> str:
    """Start a run as ``kosmos-backup dr start`` does (in this process: no CLI start-up)."""
    run = runbook_flow.start(
        world.ctx(), "slow", {"scratch_database": scratch}, started_by="cli:tester"
    )
    return run.run_id


def step_is(world: DrWorld, run_id: str, check: Callable[[RunState], bool]) -> RunState | None:
    try:
        run = world.run(run_id)
    except KosmosError:  # Redis may be flushed in the middle
        return None
    return run if check(run) else None


def ended(world: DrWorld, run_id: str) -> RunState | None:
    return step_is(world, run_id, lambda r: r.finished and bool(r.report))


def test_a_killed_worker_is_resumed_by_the_scheduler(world: DrWorld) -> None:
    scratch = world.scratch()
    run_id = start(world, scratch)
    with process(world, "worker-a", "worker", "--queues", "kosmos-default") as first:
        wait_until(
            lambda: step_is(world, run_id, lambda r: r.steps["slow-check"].executing),
            60,
            "the slow check to run",
        )
        kill_worker_and_horse(world, first, str(world.run(run_id).steps["slow-check"].op_id))
    assert world.run(run_id).steps["slow-check"].status == StepStatus.RUNNING
    with (
        process(world, "worker-b", "worker", "--queues", "kosmos-default"),
        process(world, "scheduler", "scheduler"),
    ):
        run = wait_until(lambda: ended(world, run_id), 120, "the run to end")
    assert run.status == RunStatus.DONE, run.failure
    assert run.steps["slow-check"].attempts == 2  # run again: a check is safe to repeat
    assert run.steps["restore"].attempts == 1
    assert not database_exists(scratch)


def test_a_step_unsafe_to_repeat_asks_a_person_after_a_crash(world: DrWorld) -> None:
    scratch = world.scratch()
    run_id = start(world, scratch)
    with process(world, "worker-c", "worker", "--queues", "kosmos-default") as first:
        wait_until(
            lambda: step_is(world, run_id, lambda r: r.steps["restore"].executing),
            90,
            "the restore to begin",
        )
        kill_worker_and_horse(world, first, str(world.run(run_id).steps["restore"].op_id))
    # The dead job's heartbeat goes stale (jobs.abandoned_after is 4 s here).
    resumed = wait_until(
        lambda: "ask" in (out := run_cli(world, "dr", "resume", run_id).stdout) and out,
        30,
        "resume to ask about the restore",
    )
    assert "restore: ask (not safe to repeat)" in resumed
    state = world.run(run_id).steps["restore"]
    assert state.awaiting == Awaiting.DECISION and "not safe to repeat" in str(state.question)
    # The person looks at what the crash left, removes it, and retries.
    drop_database(scratch)
    answer = run_cli(
        world, "dr", "confirm", run_id, "restore", "retry", env=as_person("UIC", IC_TOKEN)
    )
    assert answer.returncode == 0, answer.stderr
    with process(world, "worker-d", "worker", "--queues", "kosmos-default"):
        run = wait_until(lambda: ended(world, run_id), 120, "the run to end")
    assert run.status == RunStatus.DONE, run.failure
    assert run.steps["restore"].attempts == 2 and run.steps["restore"].confirmed_by == "UIC"
    assert not database_exists(scratch)


def test_a_flushed_redis_is_resumed_from_storage(world: DrWorld, tmp_path: Path) -> None:
    scratch = world.scratch()
    with admin() as gate:  # the check waits on this lock until the resume is done
        gate.execute("select pg_advisory_lock(%s)", (CHECK_GATE,))
        run_id = start(world, scratch)
        with process(world, "worker-e", "worker", "--queues", "kosmos-default"):
            wait_until(
                lambda: step_is(world, run_id, lambda r: r.steps["slow-check"].executing),
                60,
                "the slow check to run",
            )
            world.ctx().redis.flushdb()
            assert not runbook_flow.runs(world.ctx()).exists(run_id)
            status = run_cli(world, "dr", "status", run_id)  # read from storage's copy
            assert status.returncode == 0 and "A check that takes a while" in status.stdout
            answer = run_cli(world, "dr", "resume", run_id)
            assert answer.returncode == 0, answer.stderr
            assert f"resumed {run_id}" in answer.stdout
            gate.execute("select pg_advisory_unlock(%s)", (CHECK_GATE,))
            run = wait_until(lambda: ended(world, run_id), 120, "the run to end")
    assert run.status == RunStatus.DONE, run.failure
    assert run.steps["pick"].attempts == 1  # done before the flush: kept from storage
    # The check was still running at the resume, which kept it: it ran once and recorded.
    assert run.steps["slow-check"].attempts == 1
    assert not database_exists(scratch)
