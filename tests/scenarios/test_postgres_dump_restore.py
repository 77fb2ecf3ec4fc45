"""A PostgreSQL operator's day, through the ``kosmos-backup`` command and a moto S3 store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE_CONFIG, s3_client
from tests.pgsample import (
    admin,
    create_database,
    database_exists,
    drop_database,
    pg_env,
    rows_of,
    scratch_databases,
)
from tests.sync import wait_until
from workers.engines.postgres import archives

SNAPSHOT_QUERIES = {
    "accounts": "SELECT * FROM accounts ORDER BY id",
    "events": "SELECT t, kind, payload::text, at, score FROM events ORDER BY 1, 2, 3",
    "mixed": 'SELECT * FROM "Odd Schema"."Mixed Case" ORDER BY 1',
    "big": "SELECT count(*), md5(string_agg(body, ',' ORDER BY id)) FROM big",
}


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``kosmos-backup`` as an operator would."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")}
    full.update(env)
    return subprocess.run(
        ["kosmos-backup", "--config", str(EXAMPLE_CONFIG), *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=240,
    )


def ok_json(*args: str, env: dict[str, str]) -> Any:
    result = cli(*args, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def snapshot(database: str) -> dict[str, list[tuple[Any, ...]]]:
    return {name: rows_of(database, query) for name, query in SNAPSHOT_QUERIES.items()}


@pytest.fixture
def env(s3_env: dict[str, str], sample_db: str) -> dict[str, str]:
    return {**s3_env, **pg_env(sample_db)}


def test_dump_drop_restore_and_every_table_matches(env: dict[str, str], sample_db: str) -> None:
    before = snapshot(sample_db)
    manifest = ok_json("backup", "postgres", "--local", env=env)
    assert {e["name"] for e in manifest["objects"]} == {f"{sample_db}.dump.zst", "globals.sql.zst"}

    drop_database(sample_db)
    result = ok_json("restore", "postgres", "latest", "--target-database", sample_db, env=env)

    assert result["checksums_matched"] is True
    restored = result["databases"][0]
    assert restored["created"] is True and restored["mismatches"] == []
    assert restored["tables"] == 5 and restored["rows"] == 2000 + 4 + 2 + 150000
    assert snapshot(sample_db) == before


def test_the_cli_says_what_a_restore_compared_and_its_time_against_the_rto(
    env: dict[str, str], db_names: Callable[[str], str]
) -> None:
    ok_json("backup", "postgres", "--local", env=env)
    target = db_names("cli")
    result = cli("restore", "postgres", "latest", "--target-database", target, env=env)
    assert result.returncode == 0, result.stderr
    said = result.stdout.splitlines()[0]
    assert said.startswith("restored postgres-")
    assert ": 5 tables / 152,006 rows compared · checksums match · " in said
    assert " of the 4h RTO (" in said


def test_restore_over_the_live_database_needs_in_place(env: dict[str, str], sample_db: str) -> None:
    ok_json("backup", "postgres", "--local", env=env)
    refused = cli("restore", "postgres", "--target-database", sample_db, env=env)
    assert refused.returncode == 1
    assert "live source database" in refused.stderr and "--in-place" in refused.stderr

    with admin(sample_db) as conn:
        conn.execute("DELETE FROM accounts WHERE id > 10")
        conn.execute("CREATE TABLE added_later (x int)")
    result = ok_json("restore", "postgres", "--target-database", sample_db, "--in-place", env=env)
    assert result["checksums_matched"] is True
    assert result["databases"][0]["in_place"] is True
    assert result["databases"][0]["notes"] == ["public.added_later: not in the backup"]
    assert rows_of(sample_db, "SELECT count(*) FROM accounts") == [(2000,)]


def test_a_restore_killed_midway_leaves_an_empty_database_the_next_restore_names(
    env: dict[str, str], sample_db: str, db_names: Callable[[str], str], tmp_path: Path
) -> None:
    manifest = ok_json("backup", "postgres", "--local", env=env)
    backup_id = manifest["id"]
    # pg_restore waits 30 s before the real one: the restore is surely mid-way when killed.
    real = archives.client("pg_restore")
    slow = tmp_path / "pg_restore"
    slow.write_text(f'#!/bin/sh\nsleep 30\nexec "{real}" "$@"\n')
    slow.chmod(0o755)
    target = db_names("killed")
    full = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")}
    full |= {**env, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    argv = ["kosmos-backup", "--config", str(EXAMPLE_CONFIG), "restore", "postgres", backup_id]
    restore = subprocess.Popen(
        [*argv, "--target-database", target, "--local"],
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: comment_of(target).startswith("restore in progress"), 60, "the mark")
    finally:
        os.killpg(restore.pid, signal.SIGKILL)  # the worker dies, with pg_restore and psql
        restore.wait()
    assert comment_of(target) == f"restore in progress from backup {backup_id} by kosmos-backup"
    assert rows_of(target, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]

    refused = cli("restore", "postgres", backup_id, "--target-database", target, env=env)
    assert refused.returncode == 1
    assert f"database {target}" in refused.stderr and "did not finish" in refused.stderr
    assert "--in-place" in refused.stderr
    again = ok_json(
        "restore", "postgres", backup_id, "--target-database", target, "--in-place", env=env
    )
    assert again["checksums_matched"] is True and again["databases"][0]["in_place"] is True
    assert comment_of(target) == f"restored from backup {backup_id} by kosmos-backup"
    assert snapshot(target) == snapshot(sample_db)


def comment_of(database: str) -> str:
    rows = rows_of(
        "postgres",
        "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database"
        f" WHERE datname = '{database}'",
    )
    return str(rows[0][0]) if rows else ""


def test_a_damaged_object_fails_verify_and_the_restore_refuses_leaving_nothing(
    env: dict[str, str], sample_db: str, s3_server: Any, db_names: Callable[[str], str]
) -> None:
    manifest = ok_json("backup", "postgres", "--local", env=env)
    passed = ok_json("verify", "postgres", manifest["id"], "--deep", "--local", env=env)
    assert passed["verification"]["state"] == "passed"
    assert scratch_databases(sample_db) == []

    name = f"{sample_db}.dump.zst"
    bucket = env["KOSMOS__STORAGE__URL"].split("/")[2]
    key = f"kosmos/postgres/{manifest['id']}/{name}"
    client = s3_client(s3_server.url)
    data = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0x55
    client.put_object(Bucket=bucket, Key=key, Body=bytes(data))

    failed = cli("verify", "postgres", manifest["id"], "--json", "--local", env=env)
    assert failed.returncode == 1
    record = json.loads(failed.stdout)["verification"]
    assert record["state"] == "failed"
    assert f"checksum mismatch in object {name}" in record["detail"]

    target = db_names("damaged")
    refused = cli("restore", "postgres", manifest["id"], "--target-database", target, env=env)
    assert refused.returncode == 1
    assert f"restore refused: checksum mismatch in object {name}" in refused.stderr
    assert not database_exists(target)
    # the failed verification also keeps ``latest`` away from the damaged backup
    latest = cli("restore", "postgres", "latest", "--target-database", target, env=env)
    assert latest.returncode == 1 and "no good logical backup" in latest.stderr


def test_globals_are_backed_up_and_restored_on_request(
    env: dict[str, str], sample_db: str, db_names: Callable[[str], str]
) -> None:
    role = f"{sample_db}_reader"
    with admin() as conn:
        conn.execute(f"CREATE ROLE {role} NOLOGIN")
    try:
        manifest = ok_json("backup", "postgres", "--local", env=env)
        assert manifest["objects"][1]["meta"]["role_passwords"] is False  # not encrypted
        with admin() as conn:
            conn.execute(f"DROP ROLE {role}")
        target = db_names("with_globals")
        result = ok_json(
            "restore", "postgres", "--target-database", target, "--with-globals", env=env
        )
        assert result["globals_restored"] is True
        assert any('role "postgres" already exists' in e for e in result["globals_errors"])
        assert rows_of("postgres", f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'") == [(1,)]
    finally:
        with admin() as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_unreachable_server_and_unknown_component(s3_env: dict[str, str]) -> None:
    env = {**s3_env, **pg_env("app", dsn="host=127.0.0.1 port=1 user=postgres")}
    failed = cli("backup", "postgres", "--local", env=env)
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: cannot connect to postgres@127.0.0.1:1/postgres")
    assert "Traceback" not in failed.stderr
    assert ok_json("list", "postgres", env=env) == {"backups": []}

    unknown = cli("backup", "nosuch", "--local", env=env)
    assert unknown.returncode == 2 and "unknown component 'nosuch'" in unknown.stderr


MEMORY_PROBE = textwrap.dedent(
    """
    import json, sys
    from workers.context import Context
    from workers.config_loader import load_settings
    from workers import components
    manifest = components.backup(Context(load_settings(sys.argv[1])), "postgres")
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the (large) pytest parent.
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    peak = int(status.split()[0]) * 1024
    sizes = [d["size_bytes"] for d in manifest.details["databases"].values()]
    print(json.dumps({"peak": peak, "database_bytes": sum(sizes)}))
    """
)


def test_memory_stays_flat_while_dumping_a_hundred_megabyte_database(
    s3_env: dict[str, str], db_names: Callable[[str], str]
) -> None:
    name = db_names("memory")
    # md5 text compresses about 2:1 (zstd), so parts keep flowing to the store.
    create_database(
        name,
        "CREATE TABLE blob (id int, body text); "
        "INSERT INTO blob SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 750000) g;",
    )
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")} | s3_env | pg_env(name)
    )
    env["KOSMOS__STORAGE__PART_SIZE_MIB"] = "16"  # the shipped default, not the test's 5
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(EXAMPLE_CONFIG)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert probe.returncode == 0, probe.stderr
    measured = json.loads(probe.stdout)
    assert measured["database_bytes"] > 100 * 2**20
    assert measured["peak"] < 150 * 2**20, f"peak RSS {measured['peak'] / 2**20:.0f} MiB"
