"""The shipped ``postgres-restore`` runbook end to end with its scale steps automated.

A scratch PostgreSQL cluster archiving its WAL through ``kosmos-backup wal-push``, S3 on
moto, Redis, the fake Kubernetes API server with Velero's controller, and ``kosmos-backup
up`` (the console chat, a worker on every queue, the scheduler) with the ``kubernetes``
(velero) component pointed at the fake. @alice starts the runbook; scale-down runs as a job
and records the consumers' replica counts in the run; the restore waits for @bob's approval;
scale-up brings back exactly the recorded counts and waits until they are ready. The test
waits for what the console prints and what the cluster shows, never for a while.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from tests.conftest import REDIS_DB, s3_client
from tests.console_session import Session
from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.velero import APPS, FakeVelero, platform
from tests.pgcluster import (
    PgCluster,
    archive_settings,
    archiving_config,
    scratch_dir,
    write_for_postgres,
)
from tests.services import MotoServer, free_port
from workers import components
from workers.config_loader import load_settings
from workers.context import Context
from workers.engines.postgres import base_backups
from workers.engines.postgres.cluster import LocalInstance
from workers.runbooks import flow as runbook_flow

pytestmark = pytest.mark.timeout(420)
SETTINGS = """\
    databases: [shop]
  kubernetes:
    kind: velero
    namespaces: [kosmos-agents, kosmos-data, kosmos-system]
    kubeconfig: {kubeconfig}
    frequency: 1d
    retention: 30d
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
approval_key: velero-runbook-approval-key-0123456789
"""
"""What the test adds to the archiving cluster's config: the database, the cluster, two people."""
WAIT = 90.0
"""Seconds any one printed line may take to come (a restore of the scratch cluster)."""
RECORDED = {
    "kosmos-agents/deployments/planner": 3,
    "kosmos-agents/deployments/writer": 1,
    "kosmos-agents/deployments/paused": 0,
}
"""The consumers the runbook scales (its ``namespaces: kosmos-agents``), as the platform has."""


def replicas(kube: FakeKubernetes, key: str) -> int:
    """A workload's ``spec.replicas`` in the cluster, by ``namespace/plural/name``."""
    namespace, plural, name = key.split("/")
    found = kube.get(APPS, namespace, plural, name)
    assert found is not None, key
    return int(found["spec"]["replicas"])


@pytest.fixture
def velero() -> Iterator[FakeVelero]:
    """The platform's cluster (consumers ready a moment after scaling) and Velero's controller."""
    kube = platform(FakeKubernetes().start())
    kube.ready_delay = 0.5  # the health probe has something to wait for
    controller = FakeVelero(kube).start()
    try:
        yield controller
    finally:
        controller.stop()
        kube.stop()


def test_postgres_restore_runs_end_to_end_with_automated_scale_steps(
    s3_server: MotoServer, tmp_path: Path, velero: FakeVelero
) -> None:
    kube = velero.kube
    bucket = f"kb-vrun-{uuid.uuid4().hex[:10]}"
    s3_client(s3_server.url).create_bucket(Bucket=bucket)
    root = scratch_dir("velero-run")
    cluster = PgCluster(root)
    config = archiving_config(
        root / "kosmos.yaml", endpoint=s3_server.url, bucket=bucket, cluster=cluster
    )
    kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig")
    extra = SETTINGS.format(kubeconfig=kubeconfig, redis_db=REDIS_DB)
    write_for_postgres(config, config.read_text() + extra)
    cluster.settings.update(archive_settings(config))
    cluster.init().start()
    redis = redis_lib.Redis.from_url(f"redis://127.0.0.1:6379/{REDIS_DB}")
    redis.flushdb()
    data_dir, port = scratch_dir("velero-restored") / "data", free_port()
    console = None
    try:
        ctx = first_backups(cluster, config)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
        env.update({"COLUMNS": "400", "PYTHONUNBUFFERED": "1"})
        argv = ["kosmos-backup", "--config", str(config), "up", "--log-dir", str(tmp_path)]
        console = Session(argv, env, tmp_path / "up.log")
        console.expect(r"kosmos-backup console — you are @alice \(operators\)")
        run_id = restore_through_the_console(console, kube, data_dir, port)
        run = runbook_flow.runs(ctx).load(run_id)
        assert run.steps["scale-down"].outputs["replicas"] == RECORDED
        up = run.steps["scale-up"].outputs
        assert up["replicas"] == RECORDED and up["healthy"] is True
        assert {key: replicas(kube, key) for key in RECORDED} == RECORDED
        restored = PgCluster(data_dir.parent, port=port)
        assert restored.execute("SELECT count(*) FROM orders", dbname="shop") == [(500,)]
        failed_restore_still_scales_up(console, kube, data_dir)
        assert console.close() == 0
        assert "Traceback" not in console.output()
    finally:
        if console is not None:
            console.close()
        LocalInstance(str(data_dir), port, "").stop(mode="immediate")
        shutil.rmtree(data_dir.parent, ignore_errors=True)
        cluster.remove()
        redis.flushdb()
        redis.close()


def first_backups(cluster: PgCluster, config: Path) -> Context:
    """The shop's data and the backups the scheduler would take first (dump, base, velero)."""
    cluster.execute("CREATE DATABASE shop")
    cluster.execute(
        "CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 500) g", dbname="shop"
    )
    ctx = Context(load_settings(config, environ={}))
    # Taken here so that the scheduler has nothing due that would race the runbook.
    components.backup(ctx, "postgres")
    components.backup(ctx, "kubernetes")
    cluster.execute("CHECKPOINT")
    base_backups.base_backup(ctx, "postgres")
    return ctx


def restore_through_the_console(
    console: Session, kube: FakeKubernetes, data_dir: Path, port: int
) -> str:
    """Start the runbook as @alice, approve its restore as @bob, wait for the run's end."""
    console.send(f"/dr start postgres-restore --param data_dir={data_dir} --param port={port}")
    run_id = console.expect(r"started Restore PostgreSQL to a new instance as (dr-\S+)").group(1)
    console.expect(rf"{run_id} ✅ 1\. Scale down consumers: done", WAIT)
    console.expect(rf"{run_id} ⏸ 2\. Restore to a new instance .*: waiting for a two-person")
    request = console.expect(r"approvers: /restore approve (rr-\S+) · /restore deny").group(1)
    # The consumers are down while the restore waits for its second person.
    assert {key: replicas(kube, key) for key in RECORDED} == dict.fromkeys(RECORDED, 0)
    console.send(f"/restore approve {request}")
    console.expect("you may not use restore approve: it needs the approvers role")
    console.send("/as @bob")
    console.send(f"/restore approve {request}")
    console.expect(rf"You approved {request}; restore op-\S+ is queued")
    console.expect(rf"{run_id} ✅ 2\. Restore to a new instance .*: done", WAIT)
    console.expect(rf"{run_id} ✅ 4\. Promote and verify: done", WAIT)
    console.expect(rf"{run_id} ✅ 5\. Scale consumers back up: done", WAIT)
    console.expect(rf"{run_id} ✅ Restore PostgreSQL to a new instance done", WAIT)
    return run_id


def failed_restore_still_scales_up(console: Session, kube: FakeKubernetes, data_dir: Path) -> None:
    """A restore that fails (an instance uses its data directory): scale-up runs all the same."""
    console.send("/as @alice")
    console.send(
        f"/dr start postgres-restore --param data_dir={data_dir} --param port={free_port()}"
    )
    run_id = console.expect(r"started Restore PostgreSQL to a new instance as (dr-\S+)").group(1)
    console.expect(rf"{run_id} ✅ 1\. Scale down consumers: done", WAIT)
    request = console.expect(r"approvers: /restore approve (rr-\S+)", WAIT).group(1)
    assert replicas(kube, "kosmos-agents/deployments/planner") == 0
    console.send("/as @bob")
    console.send(f"/restore approve {request}")
    console.expect(rf"{run_id} ❌ 2\. Restore to a new instance .*: failed", WAIT)
    console.expect(rf"{run_id} ✅ 5\. Scale consumers back up: done", WAIT)
    console.expect(rf"{run_id} ❌ Restore PostgreSQL to a new instance failed", WAIT)
    assert {key: replicas(kube, key) for key in RECORDED} == RECORDED
