"""barman-cloud on a real scratch cluster: base backups, wal-push/fetch rules, verify, prune.

One archiving cluster and one base backup serve the whole module (each costs seconds). The
quiet-moment restore runs early, while the WAL to replay is short; the prune test runs last
because it ages and deletes that backup.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import s3_client
from tests.pgcluster import (
    PgCluster,
    archive_settings,
    archiving_config,
    give_to_postgres,
    run_kosmos,
    scratch_dir,
    wait_archived,
)
from tests.services import MotoServer, free_port
from workers import components
from workers.config_loader import load_settings
from workers.context import Context
from workers.core.errors import EngineError, NotFoundError, UsageError
from workers.core.manifest import Manifest, VerificationState
from workers.engines.postgres import barman_cloud, pitr
from workers.engines.postgres import base_backups as barman

SEGMENT_A = "0000000100000000000000F0"


@dataclass
class Archived:
    """A scratch cluster that archives into a bucket, with its first base backup."""

    cluster: PgCluster
    config: Path
    ctx: Context
    bucket: str
    endpoint: str
    base: Manifest

    def fresh_ctx(self) -> Context:
        """A new context (the repository caches nothing, but keep tests independent)."""
        return Context(load_settings(self.config, environ={}))


@pytest.fixture(scope="module")
def archived(s3_server: MotoServer) -> Iterator[Archived]:
    bucket = f"kb-b2-{uuid.uuid4().hex[:10]}"
    s3_client(s3_server.url).create_bucket(Bucket=bucket)
    root = scratch_dir("b2")
    cluster = PgCluster(root)
    config = archiving_config(
        root / "kosmos.yaml", endpoint=s3_server.url, bucket=bucket, cluster=cluster
    )
    cluster.settings.update(archive_settings(config))
    cluster.init().start()
    cluster.execute("CREATE TABLE items (id int PRIMARY KEY, body text, tags jsonb)")
    cluster.execute(
        "INSERT INTO items SELECT g, md5(g::text), jsonb_build_object('g', g)"
        " FROM generate_series(1, 500) g"
    )
    cluster.execute("CREATE DATABASE kb_b2_app")
    cluster.execute("CREATE TABLE notes (n int)", dbname="kb_b2_app")
    cluster.execute("INSERT INTO notes SELECT generate_series(1, 20)", dbname="kb_b2_app")
    cluster.execute("CHECKPOINT")
    ctx = Context(load_settings(config, environ={}))
    base = barman.base_backup(ctx, "postgres")
    wait_archived(cluster)
    yield Archived(cluster, config, ctx, bucket, s3_server.url, base)
    cluster.remove()


def test_base_backup_manifest_points_at_the_barman_backup(archived: Archived) -> None:
    manifest = archived.base
    ctx = archived.fresh_ctx()
    assert manifest.kind == "postgres-base"
    details = manifest.details
    target = barman_cloud.target_for(ctx.settings, "postgres")
    listed = {b["backup_id"]: b for b in barman_cloud.list_backups(target)}
    assert listed[details["barman_backup_id"]]["backup_name"] == manifest.id
    assert details["begin_wal"] <= details["end_wal"]
    assert details["databases"] == ["kb_b2_app", "postgres"]
    assert details["tables"] == 2 and details["rows"] == 520
    assert details["tables_exact"] is True
    assert {e.name.split(".")[0] for e in manifest.objects} == {"barman-backup", "tables"}
    for entry in manifest.objects:
        ctx.repo.check_object(manifest, entry.name)
    # barman's objects live beside the component's backups, never among them.
    keys = s3_client(archived.endpoint).list_objects_v2(Bucket=archived.bucket)["Contents"]
    assert any(k["Key"].startswith("kosmos/_barman/postgres/pg/base/") for k in keys)
    assert [b.id for b in components.list_backups(ctx, "postgres")] == [manifest.id]


def test_restore_to_a_quiet_moment_replays_to_the_end_of_the_archive(
    archived: Archived,
) -> None:
    """No commit after T in an archive that reaches past T: PostgreSQL alone would stop with
    "recovery ended before configured recovery target was reached"; the end is the answer."""
    cluster = archived.cluster
    cluster.execute("INSERT INTO items VALUES (2000, 'last before T', '{}')")
    time.sleep(0.3)
    target = datetime.now(UTC)
    time.sleep(0.3)
    cluster.execute("SELECT pg_create_restore_point('quiet')")
    wait_archived(cluster)
    restored_root = scratch_dir("b2-quiet")
    port = free_port()
    try:
        summary = barman.restore_pitr(
            archived.fresh_ctx(),
            "postgres",
            "latest",
            target_time=target,
            data_dir=str(restored_root / "data"),
            port=port,
        )
        last = PgCluster(restored_root, port=port).execute("SELECT max(id) FROM items")
    finally:
        PgCluster(restored_root, port=port).remove()
    assert last == [(2000,)]
    assert summary["stopped_at_target"] is False
    assert 0 <= summary["seconds_before_target"] < 5


def test_wal_push_records_archive_freshness_for_status(archived: Archived) -> None:
    ctx = archived.fresh_ctx()
    archived.cluster.execute("INSERT INTO items VALUES (1000, 'fresh', '{}')")
    wait_archived(archived.cluster)
    state = barman.wal_status(ctx, "postgres")
    assert state["base_backups"] == 1
    assert state["last_segment"] is not None
    assert 0 <= state["lag_seconds"] < 60
    status = components.status(ctx, "postgres")[0]
    # Achieved RPO comes from WAL freshness, not from when the base backup finished.
    assert status.recovery_point is not None
    assert status.recovery_point > archived.base.finished_at
    assert not status.rpo_breached


def _push_config(
    archived: Archived, server_name: str, endpoint: str | None = None, *, conditional: bool = False
) -> Path:
    """A config for wal-push tests on their own server name, so the real chain stays whole."""
    text = archived.config.read_text().replace("server_name: pg", f"server_name: {server_name}")
    if conditional:
        text = text.replace("storage:\n", "storage:\n  conditional_writes: true\n", 1)
    if endpoint:
        text = text.replace(archived.endpoint, endpoint)
    path = archived.cluster.root / f"{server_name}.yaml"
    path.write_text(text)
    path.chmod(0o644)
    return path


def _segment(directory: Path, content: bytes) -> Path:
    path = directory / SEGMENT_A
    path.write_bytes(content)
    path.chmod(0o644)
    give_to_postgres(path)
    return path


@pytest.mark.parametrize("conditional", [False, True], ids=["look-first", "if-none-match"])
def test_wal_push_is_idempotent_and_never_overwrites_different_content(
    archived: Archived, conditional: bool
) -> None:
    """Both ways never overwrite: a HEAD first (OSS may ignore If-None-Match), or the store's
    own refusal of ``If-None-Match: *`` where it honours it."""
    config = _push_config(archived, f"push-{uuid.uuid4().hex[:6]}", conditional=conditional)
    assert ("conditional_writes: true" in config.read_text()) is conditional
    work = scratch_dir("b2-wal")
    try:
        original = os.urandom(64 * 1024)
        segment = _segment(work, original)
        first = run_kosmos("--config", str(config), "wal-push", str(segment))
        assert first.returncode == 0, first.stderr
        again = run_kosmos("--config", str(config), "wal-push", str(segment))
        assert again.returncode == 0, again.stderr

        _segment(work, os.urandom(64 * 1024))
        clash = run_kosmos("--config", str(config), "wal-push", str(segment))
        assert clash.returncode != 0
        assert "already archived with different content" in clash.stderr

        fetched = work / "fetched"
        got = run_kosmos("--config", str(config), "wal-fetch", SEGMENT_A, str(fetched))
        assert got.returncode == 0, got.stderr
        assert fetched.read_bytes() == original
        missing = run_kosmos("--config", str(config), "wal-fetch", "00000009.history", str(fetched))
        assert missing.returncode == 1
        assert "not in" in missing.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_wal_fetch_delivers_an_archived_history_file_and_refuses_an_absent_one(
    archived: Archived,
) -> None:
    """History files are looked up before barman starts: the lookup must find real ones."""
    config = _push_config(archived, f"history-{uuid.uuid4().hex[:6]}")
    work = scratch_dir("b2-history")
    try:
        history = work / "0000000A.history"
        history.write_text("9\t0/5000000\tno recovery target specified\n")
        history.chmod(0o644)
        pushed = run_kosmos("--config", str(config), "wal-push", str(history))
        assert pushed.returncode == 0, pushed.stderr

        fetched = work / "RECOVERYHISTORY"
        got = run_kosmos("--config", str(config), "wal-fetch", history.name, str(fetched))
        assert got.returncode == 0, got.stderr
        assert fetched.read_text() == history.read_text()
        nowhere = work / "absent"
        absent = run_kosmos("--config", str(config), "wal-fetch", "0000000B.history", str(nowhere))
        assert absent.returncode == 1
        assert "0000000B.history is not in" in absent.stderr
        assert not nowhere.exists()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_wal_push_with_storage_down_fails_fast(archived: Archived) -> None:
    config = _push_config(archived, "down", endpoint=f"http://127.0.0.1:{free_port()}")
    work = scratch_dir("b2-down")
    try:
        segment = _segment(work, b"x" * 4096)
        began = time.monotonic()
        result = run_kosmos("--config", str(config), "wal-push", str(segment))
        elapsed = time.monotonic() - began
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert result.returncode != 0
    assert "unreachable" in result.stderr
    assert elapsed < 15, f"wal-push took {elapsed:.1f}s with storage down"


def test_base_backup_of_an_unreachable_server_fails_clearly_and_leaves_nothing(
    archived: Archived,
) -> None:
    dead = f"host=127.0.0.1 port={free_port()} user=postgres dbname=postgres"
    ctx = Context(
        load_settings(archived.config, environ={"KOSMOS__COMPONENTS__POSTGRES__DSN": dead})
    )
    before = barman_cloud.list_backups(barman_cloud.target_for(ctx.settings, "postgres"))
    with pytest.raises(EngineError, match="barman-cloud-backup failed"):
        barman.base_backup(ctx, "postgres")
    after = barman_cloud.list_backups(barman_cloud.target_for(ctx.settings, "postgres"))
    assert after == before
    assert [b.id for b in components.list_backups(ctx, "postgres")] == [archived.base.id]


def test_verify_base_deep_restores_and_matches_every_table(archived: Archived) -> None:
    ctx = archived.fresh_ctx()
    before = set(Path("/tmp").glob("kosmos-verify-*"))
    record = barman.verify_base(ctx, archived.base, deep=True)
    assert record.state == VerificationState.PASSED, record.detail
    assert record.deep
    assert record.checks["wal"]["missing"] is None
    assert record.checks["deep"] == {"tables": 2, "mismatches": [], "exact": True}
    assert set(Path("/tmp").glob("kosmos-verify-*")) <= before, "scratch restore left behind"


def test_verify_base_fails_naming_a_corrupted_object(archived: Archived) -> None:
    ctx = archived.fresh_ctx()
    entry = next(e for e in archived.base.objects if e.name.startswith("barman-backup"))
    key = f"kosmos/postgres/{archived.base.id}/{entry.name}"
    client = s3_client(archived.endpoint)
    original = client.get_object(Bucket=archived.bucket, Key=key)["Body"].read()
    client.put_object(Bucket=archived.bucket, Key=key, Body=b"Z" + original[1:])
    try:
        record = barman.verify_base(ctx, archived.base, deep=False)
    finally:
        client.put_object(Bucket=archived.bucket, Key=key, Body=original)
    assert record.state == VerificationState.FAILED
    assert entry.name in record.detail


def test_restore_refuses_a_data_directory_that_is_not_empty(archived: Archived) -> None:
    work = scratch_dir("b2-busy")
    (work / "PG_VERSION").write_text("15\n")
    try:
        with pytest.raises(UsageError, match="not empty"):
            barman.restore_pitr(
                archived.fresh_ctx(),
                "postgres",
                "latest",
                target_time=None,
                data_dir=str(work),
                port=free_port(),
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_restore_to_a_time_past_the_archive_says_so_plainly(archived: Archived) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(NotFoundError, match="WAL up to that time does not exist yet"):
        barman.restore_pitr(
            archived.fresh_ctx(),
            "postgres",
            "latest",
            target_time=later,
            data_dir="/tmp/kosmos-b2-never",
            port=free_port(),
        )
    assert not Path("/tmp/kosmos-b2-never").exists()


def test_restore_waits_for_wal_that_is_not_archived_yet(
    archived: Archived, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pitr, "WAL_WAIT", 1.0)
    wait_archived(archived.cluster)
    time.sleep(1.5)
    target = datetime.now(UTC) - timedelta(seconds=0.5)
    notes: list[str] = []
    with pytest.raises(NotFoundError, match="waiting for WAL: the archive ends at .* before"):
        barman.restore_pitr(
            archived.fresh_ctx(),
            "postgres",
            "latest",
            target_time=target,
            data_dir="/tmp/kosmos-b2-never",
            port=free_port(),
            progress=lambda phase, **kw: notes.append(str(kw.get("note"))),
        )
    assert any(note.startswith("waiting for WAL") for note in notes)


def _age(archived: Archived, manifest: Manifest, days: int) -> None:
    """Make barman believe a base backup was taken ``days`` ago (its backup.info times)."""
    client = s3_client(archived.endpoint)
    key = f"kosmos/_barman/postgres/pg/base/{manifest.details['barman_backup_id']}/backup.info"
    text = client.get_object(Bucket=archived.bucket, Key=key)["Body"].read().decode()
    when = datetime.now(UTC) - timedelta(days=days)
    for field in ("begin_time", "end_time"):
        text = re.sub(rf"^{field}=.*$", f"{field}={when}", text, flags=re.M)
    client.put_object(Bucket=archived.bucket, Key=key, Body=text.encode())


def test_prune_base_deletes_what_the_recovery_window_no_longer_needs(archived: Archived) -> None:
    ctx = archived.fresh_ctx()
    oldest = archived.base
    newer = barman.base_backup(ctx, "postgres")
    _age(archived, oldest, days=60)
    _age(archived, newer, days=45)

    planned = barman.prune_base(ctx, "postgres", dry_run=True)
    assert planned == [oldest.id]
    assert ctx.repo.manifest(oldest.id).id == oldest.id

    deleted = barman.prune_base(ctx, "postgres", dry_run=False)
    assert deleted == [oldest.id]
    target = barman_cloud.target_for(ctx.settings, "postgres")
    remaining = {b["backup_name"] for b in barman_cloud.list_backups(target)}
    # 30-day window: the 45-day-old backup stays, it is the base for the window's start.
    assert remaining == {newer.id}
    with pytest.raises(NotFoundError):
        ctx.repo.manifest(oldest.id)
    assert [b.id for b in components.list_backups(ctx, "postgres")] == [newer.id]
    wal = barman_cloud.wal_archive(ctx.settings, target).names()
    assert min(n for n in wal if len(n) == 24) >= newer.details["begin_wal"]
