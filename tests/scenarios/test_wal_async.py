"""Asynchronous archiving's contract with PostgreSQL, on a scratch cluster.

archive_command is ``wal-push --async %p``: a background archiver pushes ``.ready`` segments
and archive_command only waits for its mark. No segment is acknowledged before it is in
the store, a killed archiver loses nothing (the next call starts another), and PostgreSQL
retries what failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import s3_client
from tests.jobs.harness import wait_until
from tests.pgcluster import (
    KOSMOS_BIN,
    PgCluster,
    archiving_config,
    ensure_postgres_install,
    scratch_dir,
    wait_archived,
)
from tests.services import MotoServer
from workers.config_loader import load_settings
from workers.engines.postgres import wal_async
from workers.engines.postgres.wal_archive import check_chain, is_segment
from workers.engines.postgres.wal_upload import WalUploader

SEGMENT_BYTES = 1 << 20  # tests.pgcluster's initdb --wal-segsize=1


@pytest.fixture
def world(s3_server: MotoServer) -> Iterator[tuple[PgCluster, str, WalUploader]]:
    """A cluster archiving asynchronously into a bucket that does not exist yet."""
    bucket = f"kb-async-{uuid.uuid4().hex[:10]}"
    root = scratch_dir("wal-async")
    cluster = PgCluster(root)
    config = archiving_config(
        root / "kosmos.yaml", endpoint=s3_server.url, bucket=bucket, cluster=cluster
    )
    ensure_postgres_install()
    cluster.settings.update(
        {
            "archive_mode": "on",
            "archive_command": f"{KOSMOS_BIN} --config {config} wal-push --async %p",
            "archive_timeout": "60",
        }
    )
    cluster.init().start()
    uploader = WalUploader(load_settings(config, environ={}), "postgres")
    yield cluster, bucket, uploader
    pid = archiver_pid(cluster)
    cluster.remove()
    if pid:
        _kill(pid)


def archiver_pid(cluster: PgCluster) -> int | None:
    """The running archiver's process id, from its pid file."""
    try:
        pid = int((spool(cluster) / wal_async.PID).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def spool(cluster: PgCluster) -> Path:
    return wal_async.spool_of(cluster.data_dir / "pg_wal")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return "zombie"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def archiver_stats(cluster: PgCluster) -> tuple[str | None, int]:
    row = cluster.execute("SELECT last_archived_wal, failed_count FROM pg_stat_archiver")
    return row[0][0], int(row[0][1])


def stored_segments(uploader: WalUploader) -> list[str]:
    return sorted(n for n in uploader.archive.names() if is_segment(n))


def test_nothing_is_acknowledged_before_it_is_stored_and_postgres_retries(
    world: tuple[PgCluster, str, WalUploader],
) -> None:
    cluster, bucket, uploader = world
    cluster.execute("CREATE TABLE t (n int)")
    cluster.execute("INSERT INTO t SELECT generate_series(1, 1000)")
    first = cluster.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0]

    # No bucket: every push fails, so PostgreSQL must hear failures and keep the segment.
    wait_until(lambda: archiver_stats(cluster)[1] >= 2, 60, "archive_command to fail")
    assert archiver_stats(cluster)[0] is None
    assert (cluster.data_dir / "pg_wal" / "archive_status" / f"{first}.ready").exists()

    s3_client(uploader.archive.storage.endpoint_url).create_bucket(Bucket=bucket)
    # New WAL, so that wait_archived's switch closes a segment and wakes the archiver,
    # which otherwise rests a minute after three failed attempts.
    cluster.execute("INSERT INTO t VALUES (0)")
    last = wait_archived(cluster)

    stored = stored_segments(uploader)
    assert first in stored and last in stored
    chain = check_chain(stored, stored[0], SEGMENT_BYTES)
    assert chain.continuous, chain
    assert uploader.stored(first) != b""
    # Everything PostgreSQL marked done is in the store: it was stored before the ack.
    done = sorted(
        p.name.removesuffix(".done")
        for p in (cluster.data_dir / "pg_wal" / "archive_status").glob("*.done")
    )
    assert set(n for n in done if is_segment(n)) <= set(stored)


def test_a_killed_archiver_loses_nothing_and_the_next_call_starts_another(
    world: tuple[PgCluster, str, WalUploader],
) -> None:
    cluster, bucket, uploader = world
    s3_client(uploader.archive.storage.endpoint_url).create_bucket(Bucket=bucket)
    cluster.execute("CREATE TABLE t (n int)")
    wait_archived(cluster)
    first = wait_until(lambda: archiver_pid(cluster), 30, "the archiver's pid file")

    _kill(first)
    wait_until(lambda: not _alive(first), 30, "the archiver to die")
    for _ in range(3):
        cluster.execute("INSERT INTO t SELECT generate_series(1, 20000)")
        last = wait_archived(cluster)

    second = wait_until(lambda: archiver_pid(cluster), 30, "a new archiver")
    assert second != first
    stored = stored_segments(uploader)
    assert last in stored
    chain = check_chain(stored, stored[0], SEGMENT_BYTES)
    assert chain.continuous, chain
    assert archiver_stats(cluster)[0] == last
