"""The PostgreSQL dump driver against the machine's PostgreSQL and real stores."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyrage
import pytest
import zstandard

from tests.conftest import PG_DSN
from tests.pgsample import (
    admin,
    create_database,
    postgres_settings,
    rows_of,
)
from tests.services import free_port
from tests.sync import wait_until
from workers import components as engine
from workers.context import Context
from workers.core.config import Settings
from workers.core.errors import EngineError
from workers.engines.postgres import archives, queries
from workers.engines.postgres.conninfo import Conninfo
from workers.engines.postgres.restoration import AFTER_DATA, scratch_name

TINY = "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, NULL);"


def stored_keys(ctx: Context) -> list[str]:
    return [info.key for info in ctx.repo.store.list_objects("postgres/")]


def test_backup_records_objects_source_versions_and_table_facts(
    make_settings: Callable[..., Settings], sample_db: str
) -> None:
    dsn = f"{PG_DSN} dbname=postgres password=hunter2"  # trust auth ignores it; it must not leak
    ctx = Context(postgres_settings(make_settings, sample_db, dsn=dsn))
    phases: list[tuple[str, int | None]] = []

    def progress(phase: str, *, done_bytes: int | None = None, **_: object) -> None:
        phases.append((phase, done_bytes))

    manifest = engine.backup(ctx, "postgres", progress=progress)

    assert manifest.kind == "postgres-logical"
    assert [e.name for e in manifest.objects] == [f"{sample_db}.dump.zst", "globals.sql.zst"]
    assert manifest.source["databases"] == [sample_db]
    assert manifest.source["host"] == "127.0.0.1" and manifest.source["user"] == "postgres"
    assert manifest.tool_versions["pg_dump"].startswith("pg_dump (PostgreSQL)")
    tables = manifest.details["databases"][sample_db]["tables"]
    assert tables["public.big"]["rows"] == 150000
    assert tables["public.events"]["method"] == "columns:hhthh"
    assert ("dump globals", None) in phases
    assert phases[-2][0] == f"dump {sample_db}" and phases[-2][1] == manifest.objects[0].raw_size
    for entry in manifest.objects:
        ctx.repo.check_object(manifest, entry.name)
    # unencrypted, the stored dump is a stock archive once zstd -d has read it
    stored = Path(ctx.settings.storage.path) / "postgres" / manifest.id / f"{sample_db}.dump.zst"
    with stored.open("rb") as packed:
        assert zstandard.ZstdDecompressor().stream_reader(packed).read(5) == b"PGDMP"
    assert manifest.objects[0].meta["archive_compression"] == "none"
    assert manifest.objects[0].meta["compression"] == "zstd"
    stored_json = b"".join(p.read_bytes() for p in Path(ctx.settings.storage.path).rglob("*.json"))
    assert b"postgres-logical" in stored_json
    assert b"hunter2" not in json.dumps(manifest.model_dump(mode="json")).encode() + stored_json
    assert ctx.repo.index("postgres").backups[-1].id == manifest.id


def test_all_databases_means_every_non_template_database(sample_db: str) -> None:
    info = Conninfo.parse(f"{PG_DSN} dbname=postgres")
    conn = queries.connect(info)
    try:
        found = queries.list_databases(conn)
    finally:
        conn.close()
    assert sample_db in found and "postgres" in found
    assert "template0" not in found and "template1" not in found


@pytest.mark.parametrize(
    ("dsn", "databases", "expected"),
    [
        ("host=127.0.0.1 port={port} user=postgres", None, "Connection refused"),
        (
            f"{PG_DSN} dbname=postgres",
            "kb_b1_missing_db",
            'database "kb_b1_missing_db" does not exist',
        ),
        ("host=127.0.0.1 port=5432 user=kb_b1_missing_role", None, 'role "kb_b1_missing_role"'),
    ],
    ids=["unreachable", "missing-database", "missing-role"],
)
def test_connection_problems_fail_clearly_and_leave_no_backup(
    make_settings: Callable[..., Settings],
    sample_db: str,
    dsn: str,
    databases: str | None,
    expected: str,
) -> None:
    settings = postgres_settings(
        make_settings, databases or sample_db, dsn=dsn.format(port=free_port())
    )
    ctx = Context(settings)
    with pytest.raises(EngineError) as caught:
        engine.backup(ctx, "postgres")
    assert expected in caught.value.message
    assert ctx.repo.index("postgres").backups == []
    assert stored_keys(ctx) == []


def test_connection_lost_midway_fails_with_pg_dumps_message_and_commits_nothing(
    make_settings: Callable[..., Settings], s3_env: dict[str, str], sample_db: str
) -> None:
    ctx = Context(postgres_settings(make_settings, sample_db, env=s3_env))
    killed: list[int] = []

    def kill_pg_dump_while_it_waits() -> None:
        # pg_dump queues behind our lock; terminating its backend is a lost connection.
        deadline = time.monotonic() + 20
        with admin() as conn:
            while not killed and time.monotonic() < deadline:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = "
                    "'kosmos-backup pg_dump' AND datname = %s AND wait_event_type = 'Lock'",
                    (sample_db,),
                ).fetchall()
                for (pid,) in rows:
                    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                    killed.append(pid)
                time.sleep(0.05)

    with admin(sample_db) as locker:
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE big IN ACCESS EXCLUSIVE MODE")
        killer = threading.Thread(target=kill_pg_dump_while_it_waits)
        killer.start()
        try:
            with pytest.raises(EngineError) as caught:
                engine.backup(ctx, "postgres")
        finally:
            killer.join()
            locker.execute("ROLLBACK")
    assert killed, "pg_dump never waited on the lock"
    assert caught.value.message.startswith("pg_dump failed:")
    assert (
        "terminat" in caught.value.one_line() or "closed the connection" in caught.value.one_line()
    )
    assert ctx.repo.index("postgres").backups == []
    assert stored_keys(ctx) == []
    assert ctx.repo.store.pending_uploads("postgres/") == []


def test_encrypted_backup_keeps_role_passwords_and_restores_with_the_identity(
    make_settings: Callable[..., Settings], db_names: Callable[[str], str], tmp_path: Path
) -> None:
    source = db_names("enc")
    create_database(source, TINY)
    identity = pyrage.x25519.Identity.generate()
    key_file = tmp_path / "age.key"
    key_file.write_text(f"# test key\n{identity}\n")
    settings = make_settings(
        env={
            "KOSMOS__ENCRYPTION__RECIPIENTS": f"[{identity.to_public()}]",
            "KOSMOS__ENCRYPTION__IDENTITY_FILE": str(key_file),
        },
        **{
            "components.postgres.dsn": f"{PG_DSN} dbname=postgres",
            "components.postgres.databases": f"[{source}]",
        },
    )
    ctx = Context(settings)
    manifest = engine.backup(ctx, "postgres")
    assert [e.name for e in manifest.objects] == [f"{source}.dump.zst.age", "globals.sql.zst.age"]
    assert manifest.object("globals.sql.zst.age").meta["role_passwords"] is True
    target = db_names("enc_restored")
    result = engine.restore(ctx, "postgres", manifest.id, target_database=target)
    assert result.checksums_matched
    assert rows_of(target, "SELECT id, v FROM t ORDER BY id") == [(1, "a"), (2, None)]

    checks = engine.verify(ctx, "postgres", manifest.id).verification
    assert checks is not None and checks.state == "passed"
    assert checks.checks[f"{source}.dump.zst.age"]["archive"] == "ok"
    # a verifier without the identity checks the sha256 and does not condemn the backup
    keyless = Context(
        make_settings(
            storage_url=settings.storage.url,
            env={"KOSMOS__ENCRYPTION__RECIPIENTS": f"[{identity.to_public()}]"},
            **{"components.postgres.dsn": f"{PG_DSN} dbname=postgres"},
        )
    )
    record = engine.verify(keyless, "postgres", manifest.id).verification
    assert record is not None and record.state == "passed"
    assert record.checks[f"{source}.dump.zst.age"]["archive"].startswith("not parsed")


def test_prune_keeps_the_newest_three_even_when_all_are_past_retention(
    make_settings: Callable[..., Settings], db_names: Callable[[str], str]
) -> None:
    source = db_names("prune")
    create_database(source, TINY)
    settings = postgres_settings(make_settings, source)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    made = []
    for day in range(5):
        ctx = Context(settings, clock=functools.partial(lambda at: at, start + timedelta(days=day)))
        made.append(engine.backup(ctx, "postgres").id)
    later = Context(settings, clock=lambda: start + timedelta(days=100))
    dry = engine.prune(later, "postgres", dry_run=True)
    assert [d.backup_id for d in dry] == made[:2]
    assert all(d.dry_run for d in dry)
    assert [b.id for b in later.repo.index("postgres").backups] == made

    deleted = engine.prune(later, "postgres")
    assert [d.backup_id for d in deleted] == made[:2]
    assert [b.id for b in later.repo.index("postgres").backups] == made[2:]
    remaining = {key.split("/")[1] for key in stored_keys(later)}
    assert remaining == set(made[2:])
    assert engine.prune(later, "postgres") == []


def test_deep_verify_with_the_server_down_records_nothing(
    make_settings: Callable[..., Settings], db_names: Callable[[str], str]
) -> None:
    source = db_names("verify")
    create_database(source, TINY)
    settings = postgres_settings(make_settings, source)
    manifest = engine.backup(Context(settings), "postgres")
    down = Context(
        postgres_settings(
            make_settings, source, dsn=f"host=127.0.0.1 port={free_port()} user=postgres"
        )
    )
    with pytest.raises(EngineError, match="cannot connect"):
        engine.verify(down, "postgres", manifest.id, deep=True)
    assert down.repo.manifest(manifest.id).verification is None
    shallow = engine.verify(down, "postgres", manifest.id).verification
    assert shallow is not None and shallow.state == "passed" and not shallow.deep


def test_client_tools_skip_debians_pg_wrapper_and_keep_any_other_program_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrapped, own = tmp_path / "wrapped", tmp_path / "own"
    wrapped.mkdir()
    own.mkdir()
    (wrapped / "pg_dump").symlink_to(archives.PG_WRAPPER)
    (own / "pg_dump").write_text("#!/bin/sh\n")
    (own / "pg_dump").chmod(0o755)

    monkeypatch.setenv("PATH", str(wrapped))
    newest = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_dump"), key=lambda p: int(p.parts[-3])
    )
    assert archives.client("pg_dump") == str(newest[-1])  # what the wrapper would run
    monkeypatch.setenv("PATH", f"{own}:{wrapped}")
    assert archives.client("pg_dump") == str(own / "pg_dump")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert archives.client("pg_dump") == "pg_dump"  # not installed: the error names it


@pytest.mark.parametrize("source", ["app", "données_" * 10, "x" * 63])
def test_a_scratch_database_names_its_source_within_postgres_63_bytes(source: str) -> None:
    name = scratch_name(source)
    assert name.startswith("kb_verify_") and len(name.encode()) <= 63
    assert name[len("kb_verify_") + 9 :] == source.encode()[: 63 - 19].decode(errors="ignore")
    assert scratch_name(source) != name  # two verifies of one database never collide


def test_databases_dump_side_by_side_so_one_waiting_does_not_hold_up_the_other(
    make_settings: Callable[..., Settings], db_names: Callable[[str], str]
) -> None:
    blocked, free = db_names("blocked"), db_names("free")
    for name in (blocked, free):
        create_database(name, TINY)
    settings = make_settings(
        **{
            "components.postgres.dsn": f"{PG_DSN} dbname=postgres",
            "components.postgres.databases": f"[{blocked}, {free}]",
            "components.postgres.dump_jobs": "2",
        }
    )
    ended: list[str] = []

    def progress(phase: str, *, done_bytes: int | None = None, **_: object) -> None:
        if done_bytes:
            ended.append(phase)

    outcome: list[Any] = []
    with admin(blocked) as locker:
        locker.execute("BEGIN")
        locker.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        runner = threading.Thread(
            target=lambda: outcome.append(
                engine.backup(Context(settings), "postgres", progress=progress)
            )
        )
        runner.start()
        try:
            # The first database's pg_dump queues behind the lock; the second finishes anyway.
            wait_until(lambda: f"dump {free}" in ended, 30, f"the dump of {free}")
            assert f"dump {blocked}" not in ended
        finally:
            locker.execute("ROLLBACK")
            runner.join(60)
    manifest = outcome[0]
    assert set(manifest.details["databases"]) == {blocked, free}
    assert engine.verify(Context(settings), "postgres", manifest.id).verification.state == "passed"


def test_restore_progress_runs_to_the_last_byte_then_names_the_work_after_it(
    make_settings: Callable[..., Settings], db_names: Callable[[str], str]
) -> None:
    source, target = db_names("prog"), db_names("prog_restored")
    create_database(source, TINY)
    ctx = Context(postgres_settings(make_settings, source))
    manifest = engine.backup(ctx, "postgres")
    phases: list[tuple[str, int | None, str | None]] = []

    def progress(
        phase: str, *, done_bytes: int | None = None, note: str | None = None, **_: object
    ) -> None:
        phases.append((phase, done_bytes, note))

    result = engine.restore(ctx, "postgres", manifest.id, target_database=target, progress=progress)
    assert result.checksums_matched
    size = manifest.object(f"{source}.dump.zst").raw_size
    assert phases[-2] == (f"restore {source} -> {target}", size, None)
    assert phases[-1] == (AFTER_DATA, None, target)
