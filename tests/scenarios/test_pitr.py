"""Point-in-time recovery as an operator lives it: archive, base backup, mistake, restore to T."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tests.conftest import s3_client
from tests.pgcluster import (
    PgCluster,
    archive_settings,
    archiving_config,
    scratch_dir,
    wait_archived,
)
from tests.services import MotoServer, free_port
from workers.config_loader import load_settings
from workers.context import Context
from workers.engines.postgres import base_backups
from workers.engines.postgres.cluster import LocalInstance
from workers.engines.postgres.pitr import BIN_ENV

TICKS = 30
TICK_SECONDS = 0.03


@pytest.fixture
def source(s3_server: MotoServer) -> Iterator[tuple[PgCluster, Context]]:
    """A scratch cluster archiving WAL through kosmos-backup wal-push into a fresh bucket."""
    bucket = f"kb-pitr-{uuid.uuid4().hex[:10]}"
    s3_client(s3_server.url).create_bucket(Bucket=bucket)
    root = scratch_dir("pitr")
    cluster = PgCluster(root)
    config = archiving_config(
        root / "kosmos.yaml", endpoint=s3_server.url, bucket=bucket, cluster=cluster
    )
    cluster.settings.update(archive_settings(config))
    cluster.init().start()
    yield cluster, Context(load_settings(config, environ={}))
    cluster.remove()


def write_ticks_around_a_moment(cluster: PgCluster) -> tuple[datetime, int]:
    """Commit one row every few ms and note T halfway; return T and the ticks before it."""
    target = None
    before = 0
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        for tick in range(TICKS):
            if tick == TICKS // 2:
                time.sleep(TICK_SECONDS / 2)
                target, before = datetime.now(UTC), tick
                time.sleep(TICK_SECONDS / 2)
            conn.execute("INSERT INTO ticks VALUES (%s, clock_timestamp())", (tick,))
            time.sleep(TICK_SECONDS)
    assert target is not None
    return target, before


def test_restore_to_a_time_keeps_rows_before_it_and_drops_rows_after(
    source: tuple[PgCluster, Context],
) -> None:
    cluster, ctx = source
    began = time.monotonic()
    cluster.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
    cluster.execute("CREATE TABLE ticks (n int PRIMARY KEY, at timestamptz)")
    cluster.execute("CHECKPOINT")
    base = base_backups.base_backup(ctx, "postgres")
    assert base.kind == "postgres-base"

    cluster.execute("INSERT INTO orders SELECT g, 'A' FROM generate_series(1, 50) g")
    target, ticks_before = write_ticks_around_a_moment(cluster)
    cluster.execute("INSERT INTO orders SELECT g, 'B' FROM generate_series(51, 80) g")
    wait_archived(cluster)
    archived = time.monotonic()

    restored_root = scratch_dir("pitr-restored")
    port = free_port()
    try:
        summary = base_backups.restore_pitr(
            ctx,
            "postgres",
            "latest",
            target_time=target,
            data_dir=str(restored_root / "data"),
            port=port,
        )
        restored = PgCluster(restored_root, port=port)
        orders = restored.execute("SELECT note, count(*) FROM orders GROUP BY note")
        ticks = restored.execute("SELECT count(*), max(n) FROM ticks")
        writable = restored.execute("SELECT NOT pg_is_in_recovery()")
    finally:
        LocalInstance(str(restored_root / "data"), port, "").stop(mode="immediate")
        shutil.rmtree(restored_root, ignore_errors=True)

    assert orders == [("A", 50)]
    assert ticks == [(ticks_before, ticks_before - 1)]
    assert writable == [(True,)]
    assert prefetchers() == []  # the restore's WAL prefetcher ended with it
    assert summary["backup_id"] == base.id
    assert summary["rows"] == 50 + ticks_before
    assert summary["stopped_at_target"] is True
    error = summary["seconds_before_target"]
    # The restore point is the last commit before T: one tick (30 ms) at most, here.
    assert 0 <= error < 1.0
    print(
        f"\nPITR: restore point {error * 1000:.0f} ms before the target; "
        f"restore {summary['duration_seconds']}s; "
        f"test {time.monotonic() - began:.1f}s ({archived - began:.1f}s to archive)"
    )


def prefetchers() -> list[int]:
    """This process's wal-prefetch children that are still running."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
        except (FileNotFoundError, NotADirectoryError, ProcessLookupError, IndexError):
            continue
        if b"wal-prefetch" in cmdline and int(stat[1]) == os.getpid() and stat[0] != "Z":
            found.append(int(entry.name))
    return found


def test_a_killed_prefetcher_loses_nothing_the_restore_reaches_the_target(
    source: tuple[PgCluster, Context],
) -> None:
    cluster, ctx = source
    cluster.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
    cluster.execute("CREATE TABLE ticks (n int PRIMARY KEY, at timestamptz)")
    cluster.execute("CREATE TABLE filler (n int, pad text)")
    base = base_backups.base_backup(ctx, "postgres")
    for _ in range(3):  # a few whole segments for replay to ask for
        cluster.execute(
            "INSERT INTO filler SELECT g, repeat('x', 500) FROM generate_series(1, 2000) g"
        )
        cluster.execute("SELECT pg_switch_wal()")
    cluster.execute("INSERT INTO orders SELECT g, 'A' FROM generate_series(1, 50) g")
    target, ticks_before = write_ticks_around_a_moment(cluster)
    cluster.execute("INSERT INTO orders SELECT g, 'B' FROM generate_series(51, 80) g")
    wait_archived(cluster)

    restored_root = scratch_dir("pitr-killed")
    port = free_port()
    outcome: dict[str, object] = {}
    killed: list[int] = []

    def restore() -> None:
        try:
            outcome["summary"] = base_backups.restore_pitr(
                ctx,
                "postgres",
                "latest",
                target_time=target,
                data_dir=str(restored_root / "data"),
                port=port,
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=restore)
    worker.start()
    try:
        while worker.is_alive() and not killed:
            for pid in prefetchers():
                os.kill(pid, signal.SIGKILL)  # before it has brought anything
                killed.append(pid)
            time.sleep(0.005)
        worker.join(timeout=240)
        restored = PgCluster(restored_root, port=port)
        orders = restored.execute("SELECT note, count(*) FROM orders GROUP BY note")
        ticks = restored.execute("SELECT count(*) FROM ticks")
        leftovers = [p.name for p in restored_root.glob(".*")]
        leftovers += [p.name for p in (restored_root / "data" / "pg_wal").glob("kosmos-*")]
    finally:
        LocalInstance(str(restored_root / "data"), port, "").stop(mode="immediate")
        shutil.rmtree(restored_root, ignore_errors=True)

    assert "error" not in outcome, outcome.get("error")
    assert killed
    assert orders == [("A", 50)]
    assert ticks == [(ticks_before,)]
    assert prefetchers() == []
    assert leftovers == []  # no spool, no link to it, no fetch config
    assert outcome["summary"]["backup_id"] == base.id  # type: ignore[index]


def test_restore_base_at_the_console_prints_the_instance_and_its_counts(
    source: tuple[PgCluster, Context],
) -> None:
    cluster, ctx = source
    cluster.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
    cluster.execute("INSERT INTO orders SELECT g, 'A' FROM generate_series(1, 40) g")
    log_from = cluster.instance.log_size()
    base = base_backups.base_backup(ctx, "postgres")
    # The backup asked for its checkpoint at once rather than waiting for a spread one.
    assert "checkpoint starting: immediate force wait" in cluster.instance.log_text(log_from)
    wait_archived(cluster)

    restored_root = scratch_dir("pitr-cli")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")}
    env[BIN_ENV] = os.environ[BIN_ENV]  # restore_command runs this tree's postgres-user copy
    try:
        done = subprocess.run(
            ["kosmos-backup", "--config", str(cluster.root / "kosmos.yaml"), "restore", "postgres"]
            + ["latest", "--base", "--data-dir", str(restored_root / "data"), "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=240,
        )
    finally:
        LocalInstance(str(restored_root / "data"), port, "").stop(mode="immediate")
        shutil.rmtree(restored_root, ignore_errors=True)

    assert done.returncode == 0, done.stderr
    assert "internal error" not in done.stdout + done.stderr
    assert f"restored {base.id}: " in done.stdout
    assert f"running on port {port} from {restored_root / 'data'}" in done.stdout
    assert "postgres: 1 tables, 40 rows" in done.stdout
