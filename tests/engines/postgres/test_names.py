"""Any legal database name, and a database that fails, in every-database dumps (scratch cluster).

Odd names are made only in a scratch cluster of our own: other tests back up every database
of the machine's shared server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from psycopg import sql

from tests.pgcluster import PgCluster, scratch_dir
from tests.strategies import pg_names
from workers import components as engine
from workers.context import Context
from workers.core.config import Settings
from workers.core.errors import EngineError, NotFoundError, UsageError
from workers.core.manifest import decode_name_part
from workers.engines.postgres import queries
from workers.engines.postgres.conninfo import Conninfo
from workers.engines.postgres.restoration import dumps_of
from workers.restore.planning import resolve_plan, validate_plan

ODD_NAMES = [
    "-x",
    "--help",
    "my db",
    'it\'s "quoted"',
    "a/b\\c%d",
    "=2Dx",
    "App",
    "app",
    "données",
    "\U0001f418 elephant",
    "é" * 31 + "x",  # 63 bytes: PostgreSQL's longest name
]
TABLE = 'CREATE TABLE "odd ""table""" (id int PRIMARY KEY, name text)'
ROWS = 'INSERT INTO "odd ""table""" VALUES (1, current_database()), (2, NULL)'
READ = 'SELECT id, name FROM "odd ""table""" ORDER BY id'
BUILT_IN = {"postgres", "template0", "template1"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    """A scratch cluster of our own, so odd names never reach the shared server."""
    cluster = PgCluster(scratch_dir("names")).init().start()
    try:
        yield cluster
    finally:
        cluster.remove()


def create(cluster: PgCluster, name: str) -> None:
    """A database holding one small table whose rows name the database."""
    cluster.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    cluster.execute(TABLE, dbname=name)
    cluster.execute(ROWS, dbname=name)


def drop(cluster: PgCluster, *names: str) -> None:
    """Drop databases if they exist."""
    for name in names:
        cluster.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def context(make_settings: Callable[..., Settings], cluster: PgCluster, user: str) -> Context:
    """A context that backs up every database of the scratch cluster as ``user``."""
    dsn = f"host=127.0.0.1 port={cluster.port} user={user} dbname=postgres"
    return Context(make_settings(**{"components.postgres.dsn": dsn}))


def stored_names(ctx: Context, backup_id: str) -> set[str]:
    """Object names actually in the store under one backup, its manifest aside."""
    listed = ctx.repo.store.list_objects(f"postgres/{backup_id}/")
    return {info.key.rsplit("/", 1)[-1] for info in listed} - {"manifest.json"}


def test_every_database_backup_takes_odd_names_and_restores_each_by_name(
    make_settings: Callable[..., Settings], cluster: PgCluster
) -> None:
    for name in ODD_NAMES:
        create(cluster, name)
    try:
        ctx = context(make_settings, cluster, "postgres")
        manifest = engine.backup(ctx, "postgres")

        assert set(ODD_NAMES) <= set(manifest.source["databases"])
        dumps = dumps_of(manifest)
        assert set(dumps) == set(manifest.source["databases"])
        names = [entry.name for entry in dumps.values()]
        assert len(set(names)) == len(names)
        assert dumps["-x"].name == "_=2Dx.dump.zst" and dumps["App"].name == "App.dump.zst"
        for database, entry in dumps.items():
            assert decode_name_part(entry.name.removesuffix(".dump.zst")) == database
            assert not entry.name.startswith(("-", "."))
        assert stored_names(ctx, manifest.id) == {e.name for e in manifest.objects}
        record = engine.verify(ctx, "postgres", manifest.id).verification
        assert record is not None and record.state == "passed", record

        for name in ODD_NAMES:
            drop(cluster, name)
            result = engine.restore(
                ctx, "postgres", manifest.id, database=name, target_database=name
            )
            assert result.checksums_matched and result.databases[0].source_database == name
            assert cluster.execute(READ, dbname=name) == [(1, name), (2, None)]
    finally:
        drop(cluster, *ODD_NAMES)


def test_a_target_name_postgres_would_cut_short_is_refused(
    make_settings: Callable[..., Settings], cluster: PgCluster
) -> None:
    create(cluster, "-x")
    try:
        ctx = context(make_settings, cluster, "postgres")
        manifest = engine.backup(ctx, "postgres")
        too_long = "é" * 32  # 64 bytes
        with pytest.raises(UsageError, match="64 bytes"):
            engine.restore(ctx, "postgres", manifest.id, database="-x", target_database=too_long)
        with pytest.raises(UsageError, match="no dump of database '-y'"):
            engine.restore(ctx, "postgres", manifest.id, database="-y", target_database="z")
    finally:
        drop(cluster, "-x")


def test_a_chat_restore_plan_for_a_63_byte_name_gets_a_target_that_fits(
    make_settings: Callable[..., Settings], cluster: PgCluster
) -> None:
    longest = "é" * 31 + "x"
    create(cluster, longest)
    ctx = context(make_settings, cluster, "postgres")
    target = ""
    try:
        engine.backup(ctx, "postgres")
        plan = resolve_plan(ctx, "postgres", "latest", database=longest)
        target = plan.target
        # 40 bytes of the name (the 21st "é" would not fit whole), then the 22-byte suffix.
        assert target.startswith("é" * 20 + "_restored_") and len(target.encode()) == 62
        validate_plan(ctx, plan)
        with pytest.raises(UsageError, match="not a database name PostgreSQL keeps"):
            validate_plan(ctx, plan.model_copy(update={"target": longest + "_copy"}))
        result = engine.restore(
            ctx, "postgres", plan.backup_id, database=longest, target_database=plan.target
        )
        assert result.databases[0].database == plan.target and result.checksums_matched
        assert cluster.execute(READ, dbname=plan.target) == [(1, longest), (2, None)]
    finally:
        drop(cluster, longest, *[name for name in [target] if name])


def hold_lock_until_the_hash_gives_up(cluster: PgCluster, database: str) -> Callable[[], None]:
    """Lock a table; let go once pg_dump waits on it and our hash query has timed out.

    pg_dump ignores lock_timeout; the hash query does not. So the archive gets written and
    only then are its facts found missing: the case where a stored object must be removed.
    """
    locker = psycopg.connect(
        f"host=127.0.0.1 port={cluster.port} user=postgres",
        dbname=database,
        autocommit=True,
    )
    locker.execute("BEGIN")
    locker.execute('LOCK TABLE "odd ""table""" IN ACCESS EXCLUSIVE MODE')

    def waiting(application: str) -> bool:
        rows = cluster.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = %s AND wait_event_type = 'Lock'",
            (application, database),
        )
        return bool(rows[0][0])

    def release() -> None:
        deadline = time.monotonic() + 30
        seen_dump = False
        while time.monotonic() < deadline:
            seen_dump = seen_dump or waiting("kosmos-backup pg_dump")
            if seen_dump and not waiting(queries.APPLICATION):
                break
            time.sleep(0.05)
        locker.execute("ROLLBACK")
        locker.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread.join


def test_databases_that_fail_to_dump_do_not_stop_the_others(
    make_settings: Callable[..., Settings], cluster: PgCluster
) -> None:
    names = ["-x", "barred", "held"]
    for name in names:
        create(cluster, name)
    cluster.execute("CREATE ROLE dumper LOGIN CREATEDB IN ROLE pg_read_all_data")
    try:
        cluster.execute("REVOKE CONNECT ON DATABASE barred FROM PUBLIC")
        cluster.execute("ALTER DATABASE held SET lock_timeout = '4s'")
        ctx = context(make_settings, cluster, "dumper")
        join = hold_lock_until_the_hash_gives_up(cluster, "held")
        try:
            with pytest.raises(EngineError) as caught:
                engine.backup(ctx, "postgres")
        finally:
            join()

        message = caught.value.message
        assert "is incomplete: 2 of 4 databases failed to dump" in message
        assert "barred: cannot connect to dumper@" in message and "permission denied" in message
        assert "held: hash table" in message and "lock timeout" in message
        (summary,) = ctx.repo.index("postgres").backups
        assert summary.id in message
        manifest = ctx.repo.manifest(summary.id)
        assert sorted(dumps_of(manifest)) == ["-x", "postgres"]
        assert sorted(manifest.details["failed_databases"]) == ["barred", "held"]
        assert stored_names(ctx, manifest.id) == {e.name for e in manifest.objects}
        # Never good: latest skips it, and verifying it again does not make it good.
        assert manifest.verification is not None and manifest.verification.state == "failed"
        assert "not dumped: barred" in manifest.verification.detail
        with pytest.raises(NotFoundError, match="no good logical backup"):
            engine.restore(ctx, "postgres", "latest", database="-x", target_database="r")
        again = engine.verify(ctx, "postgres", manifest.id).verification
        assert again is not None and again.state == "failed"
        assert "held: not in this backup" in again.detail
        # What it holds restores by id; what it lacks is named as failed.
        with pytest.raises(UsageError, match="it failed to dump: cannot connect"):
            engine.restore(ctx, "postgres", manifest.id, database="barred", target_database="r")
        result = engine.restore(ctx, "postgres", manifest.id, database="-x", target_database="r")
        assert result.checksums_matched
        assert cluster.execute(READ, dbname="r") == [(1, "-x"), (2, None)]
    finally:
        drop(cluster, *names, "r")
        cluster.execute("DROP ROLE dumper")


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=pg_names)
@example(name="-x")
@example(name="\U0001f418" * 15 + "-'x")  # 63 bytes
def test_any_legal_name_dumps_lists_verifies_and_restores(
    make_settings: Callable[..., Settings], cluster: PgCluster, name: str
) -> None:
    assume(name not in BUILT_IN)
    create(cluster, name)
    try:
        ctx = context(make_settings, cluster, "postgres")
        info = Conninfo.parse(f"host=127.0.0.1 port={cluster.port} user=postgres")
        with queries.connect(info.maintenance()) as conn:
            assert name in queries.list_databases(conn)

        manifest = engine.backup(ctx, "postgres")
        assert engine.list_backups(ctx, "postgres")[0].id == manifest.id
        entry = dumps_of(manifest)[name]
        assert decode_name_part(entry.name.removesuffix(".dump.zst")) == name
        record = engine.verify(ctx, "postgres", manifest.id).verification
        assert record is not None and record.state == "passed", record.detail
        assert record.checks[entry.name]["archive"] == "ok"

        drop(cluster, name)
        result = engine.restore(ctx, "postgres", manifest.id, database=name, target_database=name)
        restored = result.databases[0]
        assert restored.checksums_matched and restored.tables == 1 and restored.rows == 2
        assert cluster.execute(READ, dbname=name) == [(1, name), (2, None)]
    finally:
        drop(cluster, name)
