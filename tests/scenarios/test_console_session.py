"""The first hour, scripted: ``kosmos-backup up`` driven through its real stdin and stdout.

A scratch PostgreSQL cluster archiving its WAL through ``kosmos-backup wal-push``, S3 on
moto, Redis, and ``kosmos-backup up`` (the console chat, a worker on every queue and the
scheduler) with a config of its own naming two people: @alice (operator) and @bob
(approver). The tests below run in order in one session and type what a new user types: a
backup, a restore that needs two people (one denied), the monthly drill to its report, and
``postgres-restore`` through its manual step and its approval step, then once more where
the restore fails. They wait for what the console prints, never for a while.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis as redis_lib

from tests.conftest import REDIS_DB, s3_client
from tests.console_session import Session
from tests.pgcluster import (
    PgCluster,
    archive_settings,
    archiving_config,
    scratch_dir,
    write_for_postgres,
)
from tests.services import MotoServer, free_port
from workers import engine
from workers.context import Context
from workers.engines.postgres import base_backups
from workers.engines.postgres.cluster import LocalInstance
from workers.settings import load_settings

SETTINGS = """\
    databases: [shop]
redis:
  url: redis://127.0.0.1:6379/{redis_db}
jobs:
  heartbeat: 1s
  abandoned_after: 20s
  scheduler_tick: 1s
  retry_intervals: []
slack:
  roles:
    operators: ["@alice"]
    approvers: ["@bob"]
approval_key: console-session-approval-key-0123456789
"""
"""What the session adds to the archiving cluster's config: the database, Redis, two people."""
SHOP_SQL = """
CREATE TABLE orders (id int PRIMARY KEY, note text);
INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 500) AS g;
"""
WAIT = 90.0
"""Seconds any one printed line may take to come (a restore of the scratch cluster)."""


@dataclass
class World:
    """The running session and what the tests need to look behind it."""

    console: Session
    cluster: PgCluster
    ctx: Context
    restored: list[tuple[Path, int]]


@pytest.fixture(scope="module")
def world(s3_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("console-session")
    bucket = f"kb-console-{uuid.uuid4().hex[:10]}"
    s3_client(s3_server.url).create_bucket(Bucket=bucket)
    root = scratch_dir("console")
    cluster = PgCluster(root)
    config = archiving_config(
        root / "kosmos.yaml", endpoint=s3_server.url, bucket=bucket, cluster=cluster
    )
    write_for_postgres(config, config.read_text() + SETTINGS.format(redis_db=REDIS_DB))
    cluster.settings.update(archive_settings(config))
    cluster.init().start()
    redis = redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{REDIS_DB}")
    redis.flushdb()
    world = None
    try:
        cluster.execute("CREATE DATABASE shop")
        cluster.execute(SHOP_SQL, dbname="shop")
        ctx = Context(load_settings(config, environ={}))
        # What the scheduler does in the first minutes: a dump and a base backup (taken here,
        # so that the scheduler has nothing due that would race the backup typed below).
        engine.backup(ctx, "postgres")
        cluster.execute("CHECKPOINT")  # the base backup's own checkpoint is then quick
        base_backups.base_backup(ctx, "postgres")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
        env.update({"COLUMNS": "400", "PYTHONUNBUFFERED": "1"})
        argv = ["kosmos-backup", "--config", str(config), "up", "--log-dir", str(folder)]
        console = Session(argv, env, folder / "up.log")
        world = World(console, cluster, ctx, [])
        console.expect(r"kosmos-backup console — you are @alice \(operators\)")
        yield world
        assert console.close() == 0
        assert "Traceback" not in console.output()
    finally:
        if world is not None:
            world.console.close()
            for data_dir, port in world.restored:
                LocalInstance(str(data_dir), port, "").stop(mode="immediate")
                shutil.rmtree(data_dir.parent, ignore_errors=True)
        cluster.remove()
        redis.flushdb()
        redis.close()


def test_a_backup_typed_in_the_console_runs_on_the_worker(world: World) -> None:
    console = world.console
    console.send("/backup run postgres")
    op_id = console.expect(r"Backup of postgres queued as (op-\S+)").group(1)
    console.expect(rf"{op_id} Backup of postgres — done · ", WAIT)


def test_a_restore_needs_a_second_person_and_a_denial_closes_it(world: World) -> None:
    console = world.console
    console.send("/restore postgres latest --target shop_denied -- try the restore flow")
    denied = console.expect(r"Restore request (rr-\S+) is waiting for 1 approver").group(1)
    console.send("/as @bob")
    console.expect(r"you are @bob: approvers")
    console.send(f"/restore deny {denied} -- not this one")
    console.expect(rf"You denied {denied}\.")
    console.send("/as @alice")
    console.send("/restore postgres latest --target shop_restored -- quarterly restore drill")
    request = console.expect(r"Restore request (rr-\S+) is waiting").group(1)
    console.send(f"/restore approve {request}")
    console.expect("you may not use restore approve: it needs the approvers role")
    console.send("/as @bob")
    console.send(f"/restore approve {request}")
    op_id = console.expect(rf"You approved {request}; restore (op-\S+) is queued").group(1)
    console.expect(rf"{op_id} Restore of postgres — done · ", WAIT)
    assert world.cluster.execute("SELECT count(*) FROM orders", dbname="shop_restored") == [(500,)]


def test_the_monthly_drill_runs_to_its_report_line_by_line(world: World) -> None:
    console = world.console
    console.send("/as @alice")
    console.send("/dr start dr-test")
    run_id = console.expect(r"started Monthly DR test as (dr-\S+)").group(1)
    # Right after the start, /dr status without an id shows the run of this console.
    console.send("/dr status")
    console.expect(rf"Monthly DR test · run {run_id} · running")
    # The console cannot update a board in place: each change is a new line.
    console.expect(rf"{run_id} ✅ 1\. Pick the latest PostgreSQL backup: done", WAIT)
    console.expect(rf"{run_id} ⏭ 4\. Restore K3s etcd into a scratch data directory: skipped")
    console.expect(rf"{run_id} ✅ 3\. Restore PostgreSQL into a scratch database: done", WAIT)
    console.expect(rf"{run_id} ✅ 9\. Tear the scratch targets down: done", WAIT)
    console.expect(rf"{run_id} ✅ Monthly DR test done: RTO ", WAIT)
    where = console.expect(rf"report markdown: (_dr/{run_id}/report\.md) in s3://").group(1)
    assert b"measured RTO" in world.ctx.repo.store.get_bytes(where)


def test_postgres_restore_with_its_manual_step_and_its_approval_step(world: World) -> None:
    console = world.console
    data_dir, port = scratch_dir("console-restored") / "data", free_port()
    world.restored.append((data_dir, port))
    console.send(f"/dr start postgres-restore --param data_dir={data_dir} --param port={port}")
    run_id = console.expect(r"started Restore PostgreSQL to a new instance as (dr-\S+)").group(1)
    console.expect(rf"{run_id} ⏸ 1\. Scale down consumers: waiting for a person")
    console.expect(r"\$ kubectl scale -n kosmos-agents --replicas=0 deployment --all")
    console.expect(r"answer: /dr done scale-down · /dr skip scale-down -- <reason>")
    console.send("/dr done scale-down")
    console.expect(rf"{run_id} ✅ 1\. Scale down consumers: done in \S+ by @alice")
    console.expect(rf"{run_id} ⏸ 2\. Restore to a new instance .*: waiting for a two-person")
    # The gate's restore request, its card and its Approve / Deny, printed in the console.
    request = console.expect(r"approvers: /restore approve (rr-\S+) · /restore deny").group(1)
    base = console.expect(r"Restore postgres (postgres-\S+)").group(1)
    assert world.ctx.repo.manifest(base).kind == "postgres-base"
    console.expect(rf"Target: {data_dir}")
    console.send("/as @bob")
    console.send(f"/restore approve {request}")
    console.expect(rf"You approved {request}; restore op-\S+ is queued")
    console.expect(rf"{run_id} ✅ 2\. Restore to a new instance .*: done", WAIT)
    console.expect(rf"{run_id} ✅ 4\. Promote and verify: done", WAIT)
    console.expect(rf"{run_id} ⏸ 5\. Scale consumers back up: waiting for a person", WAIT)
    console.send("/as @alice")
    console.send("/dr done scale-up")
    console.expect(rf"{run_id} ✅ Restore PostgreSQL to a new instance done", WAIT)
    console.expect(rf"report markdown: _dr/{run_id}/report\.md in s3://")
    restored = PgCluster(data_dir.parent, port=port)
    assert restored.execute("SELECT count(*) FROM orders", dbname="shop") == [(500,)]


def test_a_failed_restore_is_announced_and_scale_up_is_still_asked(world: World) -> None:
    console = world.console
    data_dir, port = world.restored[0][0], free_port()  # an instance runs there now
    console.send(f"/dr start postgres-restore --param data_dir={data_dir} --param port={port}")
    run_id = console.expect(r"started Restore PostgreSQL to a new instance as (dr-\S+)").group(1)
    console.send("/dr skip scale-down")
    console.expect(r"/dr skip needs a reason")
    console.send("/dr skip scale-down -- the consumers are already down")
    console.expect(rf"{run_id} ⏭ 1\. Scale down consumers: skipped .*already down")
    request = console.expect(r"approvers: /restore approve (rr-\S+)", WAIT).group(1)
    console.send("/as @bob")
    console.send(f"/restore approve {request}")
    console.expect(rf"{run_id} ❌ 2\. Restore to a new instance .*: failed", WAIT)
    console.expect(rf"a PostgreSQL instance uses {data_dir}")
    console.expect(r"hint: restores go into a new, empty data directory")
    # Scaling back up undoes scale-down: after the failure it is an open item, not skipped.
    console.expect(rf"{run_id} ⏸ 5\. Scale consumers back up: waiting for a person", WAIT)
    console.send("/as @alice")
    console.send("/dr done scale-up")
    console.expect(rf"{run_id} ❌ Restore PostgreSQL to a new instance failed", WAIT)
    console.expect(rf"report markdown: _dr/{run_id}/report\.md in s3://")
