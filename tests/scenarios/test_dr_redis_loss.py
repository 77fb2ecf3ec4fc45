"""The monthly drill (``dr-test``) survives a lost Redis, a lost worker and an abort, and
never leaves its scratch database behind.

A private redis-server (flushed, or killed and started again, while the restore step runs),
real RQ worker processes, S3 on moto, and the machine's PostgreSQL. The restore's work horse is
frozen (SIGSTOP) once its scratch database exists, so the loss lands while the step runs for
certain; the tests wait on observable state only (pg_database, the storage's copy of the run,
the work horse's process), never on sleeps.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import s3_client
from tests.fakes.slack import FakeSlack
from tests.scenarios.dr_world import (
    PREFIX,
    DrWorld,
    admin,
    database_exists,
    drop_database,
    kill,
    process,
    run_cli,
    source_database,
    wait_until,
    world_env,
)
from tests.services import MotoServer, RedisServer
from workers import components
from workers.core.errors import KosmosError
from workers.core.runbook_run import Awaiting, RunState, RunStatus, StepStatus
from workers.engines.postgres import archives
from workers.runbooks import durability as dr
from workers.runbooks import flow as runbook_flow
from workers.runbooks import resources as runbook_resources
from workers.state.redis_state import RedisState

RESTORE = "restore-postgres"
BIG_SQL = """
CREATE TABLE IF NOT EXISTS big (id int PRIMARY KEY, body text);
INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 150000) AS g;
"""


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[DrWorld]:
    folder = tmp_path_factory.mktemp("redis-loss")
    fake = FakeSlack().start()
    server = MotoServer(log_dir=folder).start()
    s3_client(server.url).create_bucket(Bucket="loss")
    try:
        with source_database() as source:
            with admin(source) as conn:
                conn.execute(BIG_SQL)  # type: ignore[arg-type]
            env = world_env(
                fake, folder, server.url, "loss", source, KOSMOS__REDIS__URL=redis_server.url
            )
            env["PATH"] = f"{slow_pg_restore(folder)}:{env['PATH']}"
            world = DrWorld(fake, env, folder, source)
            components.backup(world.ctx(), "postgres")
            yield world
            for name in world.names:
                drop_database(name)
    finally:
        server.stop()
        fake.stop()


def slow_pg_restore(folder: Path) -> str:
    """A PATH folder whose pg_restore waits 2 s, then runs the real one.

    ``restore_frozen`` must stop the work horse between CREATE DATABASE and the step's end.
    Restoring this small database takes well under a second, and on a loaded machine the
    test's first look at pg_database can come later than that. The wait keeps the step
    running until the freeze has landed.
    """
    folder = folder / "bin"
    folder.mkdir()
    real = archives.client("pg_restore")  # resolved before PATH gains this folder
    script = folder / "pg_restore"
    script.write_text(f'#!/bin/sh\nsleep 2\nexec {shlex.quote(real)} "$@"\n')
    script.chmod(0o755)
    return str(folder)


@pytest.fixture(autouse=True)
def fresh_redis(world: DrWorld) -> Iterator[None]:
    """Each test starts from an empty Redis (its runs stay in the storage) and no scratch
    database of an earlier test, so one failure cannot fail the tests after it."""
    world.ctx().redis.flushall()
    yield
    for name in world.names:
        drop_database(name)


def start(world: DrWorld, scratch: str) -> str:
    """Start the monthly drill into ``scratch`` as ``/dr start dr-test`` does."""
    run = runbook_flow.start(
        world.ctx(), "dr-test", {"scratch_database": scratch}, started_by="cli:tester"
    )
    return run.run_id


def stored(world: DrWorld, run_id: str) -> RunState:
    """The run's copy in the storage, which outlives Redis."""
    return runbook_flow.runs(world.ctx()).load_stored(run_id)  # type: ignore[no-any-return]


def ended(world: DrWorld, run_id: str) -> RunState | None:
    try:
        run = world.run(run_id)
    except KosmosError:
        return None
    return run if run.finished and run.report else None


def scratch_databases() -> list[str]:
    """Every database of ours that PostgreSQL holds besides the sources."""
    with admin() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s AND datname NOT LIKE %s",
            (f"{PREFIX}%", f"{PREFIX}src%"),
        ).fetchall()
    return [row[0] for row in rows]


def horse_of(world: DrWorld, run_id: str) -> int | None:
    """The pid of the work horse running the restore step (from its operation record), once
    the job has started."""
    op_id = world.run(run_id).steps[RESTORE].op_id
    if op_id is None:
        return None
    record = RedisState(world.ctx().redis, world.settings.redis.key_prefix).operation(op_id) or {}
    return int(record["pid"]) if record.get("pid") else None


def process_state(pid: int) -> str:
    """The kernel's one-letter state of a process (``R``, ``S``, ``T`` stopped, ``Z``...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "X"


def gone(pid: int) -> bool:
    """Whether a process has exited (a zombie waiting for its parent counts)."""
    return process_state(pid) in ("Z", "X")


@contextlib.contextmanager
def restore_frozen(world: DrWorld, run_id: str, scratch: str) -> Iterator[int]:
    """Freeze the restore's work horse (and its pg_restore) once the scratch database exists.

    The block runs while the step is certainly in the middle: made its database, not done.
    The horse is known before its database exists, and the database is watched on one open
    connection (a probe costs well under a millisecond), so the freeze lands within a few
    milliseconds of CREATE DATABASE, while pg_restore and the table checks take seconds.
    """
    horse = wait_until(lambda: horse_of(world, run_id), 120, "the restore's job to start")
    with admin() as conn:
        deadline = time.monotonic() + 120
        while not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (scratch,)
        ).fetchone():
            assert time.monotonic() < deadline, "the restore never created its database"
            time.sleep(0.002)
    os.killpg(horse, signal.SIGSTOP)
    try:
        wait_until(lambda: process_state(horse) == "T", 10, "the work horse to stop")
        assert stored(world, run_id).steps[RESTORE].status == StepStatus.RUNNING
        yield horse
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(horse, signal.SIGCONT)


def kill_horse(horse: int, worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL a work horse with its pg_restore (RQ gives it a process group), and the worker."""
    os.killpg(horse, signal.SIGKILL)
    kill(worker)


def asked_about_the_restore(world: DrWorld, run_id: str) -> bool:
    """Resume (as the scheduler would) until the dead restore's heartbeat is stale and it asks."""
    run, _ = dr.resume(world.ctx(), run_id)
    return run.steps[RESTORE].awaiting == Awaiting.DECISION


def assert_no_scratch_left(scratch: str) -> None:
    assert not database_exists(scratch)
    assert scratch_databases() == []


@pytest.mark.parametrize("loss", ["flushed", "restarted"])
def test_redis_lost_while_the_restore_runs_and_the_run_completes_once(
    world: DrWorld, redis_server: RedisServer, loss: str
) -> None:
    scratch = world.scratch()
    run_id = start(world, scratch)
    with process(world, f"worker-{loss}", "worker", "--queues", "kosmos-default"):
        with restore_frozen(world, run_id, scratch) as horse:
            if loss == "flushed":
                world.ctx().redis.flushall()
            else:
                redis_server.stop()
                redis_server.start()
            assert not runbook_flow.runs(world.ctx()).exists(run_id)
        wait_until(lambda: gone(horse), 120, "the restore's job to end")
        # The job wrote its outcome onto the storage's copy of the run itself.
        assert stored(world, run_id).steps[RESTORE].status == StepStatus.DONE
        answer = run_cli(world, "dr", "resume", run_id)
        assert answer.returncode == 0, answer.stderr
        run = wait_until(lambda: ended(world, run_id), 120, "the run to end")
    assert run.status == RunStatus.DONE, run.failure
    assert run.steps[RESTORE].attempts == 1  # finished once, never run again
    assert run.steps[RESTORE].outputs["created_databases"] == [scratch]
    assert run.steps["teardown"].outputs == {"dropped": [scratch]}
    assert [r.name for r in run.resources if r.removed] == [scratch]
    assert run.report["left_behind"] == []
    assert_no_scratch_left(scratch)


def test_a_step_whose_record_redis_lost_counts_as_alive_while_its_job_beats(
    world: DrWorld,
) -> None:
    """After a flush only the job's heartbeat (written again each beat) says it still runs:
    a resume then keeps the step rather than running it twice or asking a person."""
    ctx = world.ctx()
    beats = RedisState(ctx.redis, ctx.settings.redis.key_prefix)
    assert not dr.step_alive(ctx, "op-after-flush")
    beats.beat("op-after-flush")
    assert dr.step_alive(ctx, "op-after-flush")
    beats.beat("op-after-flush", now=ctx.clock() - timedelta(minutes=1))
    assert not dr.step_alive(ctx, "op-after-flush")


def test_a_retried_restore_drops_its_earlier_attempts_database(world: DrWorld) -> None:
    scratch = world.scratch()
    run_id = start(world, scratch)
    with (
        process(world, "worker-killed", "worker", "--queues", "kosmos-default") as worker,
        restore_frozen(world, run_id, scratch) as horse,
    ):
        kill_horse(horse, worker)
    assert database_exists(scratch)  # what the killed attempt left
    wait_until(lambda: asked_about_the_restore(world, run_id), 30, "resume to ask")
    runbook_flow.decide(world.ctx(), run_id, RESTORE, "retry", by="UIC")
    with process(world, "worker-retry", "worker", "--queues", "kosmos-default"):
        run = wait_until(lambda: ended(world, run_id), 120, "the run to end")
    assert run.status == RunStatus.DONE, run.failure
    restore = run.steps[RESTORE]
    assert restore.attempts == 2 and restore.outputs["checksums_matched"] is True
    assert restore.outputs["rows"] == 153500
    assert_no_scratch_left(scratch)


def test_a_failed_run_leaves_no_scratch_database(world: DrWorld) -> None:
    scratch = world.scratch()
    run_id = start(world, scratch)
    with (
        process(world, "worker-doomed", "worker", "--queues", "kosmos-default") as worker,
        restore_frozen(world, run_id, scratch) as horse,
    ):
        kill_horse(horse, worker)
    wait_until(lambda: asked_about_the_restore(world, run_id), 30, "resume to ask")
    runbook_flow.decide(world.ctx(), run_id, RESTORE, "fail", by="UIC")
    with process(world, "worker-teardown", "worker", "--queues", "kosmos-default"):
        run = wait_until(lambda: ended(world, run_id), 120, "the run to end")
    assert run.status == RunStatus.FAILED
    assert run.steps[RESTORE].status == StepStatus.FAILED
    assert run.steps["teardown"].status == StepStatus.DONE
    assert run.steps["teardown"].outputs == {"dropped": [scratch]}
    assert_no_scratch_left(scratch)


def test_an_aborted_run_tears_down_after_the_restore_it_waited_for(world: DrWorld) -> None:
    scratch = world.scratch()
    run_id = start(world, scratch)
    with process(world, "worker-abort", "worker", "--queues", "kosmos-default"):
        with restore_frozen(world, run_id, scratch):
            runbook_flow.abort(world.ctx(), run_id, by="UIC", reason="drill cancelled")
            # The restore is still making the scratch database: no teardown yet.
            assert world.run(run_id).steps["teardown"].status == StepStatus.PENDING
        run = wait_until(lambda: ended(world, run_id), 120, "the run to end")
    assert run.status == RunStatus.ABORTED
    assert run.steps["teardown"].outputs == {"dropped": [scratch]}
    assert_no_scratch_left(scratch)
    # Tearing down again is harmless, and so is a claim whose database is already gone
    # (a teardown that dropped it but was lost before it could say so).
    assert runbook_resources.teardown(world.ctx(), run, "teardown") == {"dropped": []}
    unrecorded = run.model_copy(deep=True)
    unrecorded.resources[0].removed_at = None
    again = runbook_resources.teardown(world.ctx(), unrecorded, "teardown")
    assert again == {"dropped": [], "already_gone": [scratch]}
