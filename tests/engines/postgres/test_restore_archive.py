"""A dump restored through pg_restore's script and psql: hashed inside the transaction, and
committed only once the whole stream checked out (the machine's PostgreSQL)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator

import pytest
from psycopg import sql

from tests.conftest import PG_DSN
from tests.pgsample import create_database, facts_of, rows_of
from workers.core.errors import EngineError, IntegrityError
from workers.engines.postgres import archive_restore, archives, queries
from workers.engines.postgres.conninfo import Conninfo

SOURCE_SQL = '''
CREATE TABLE t (id int PRIMARY KEY, body text CHECK (body <> 'refused'));
INSERT INTO t SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 20000) AS g;
CREATE TABLE "Odd ""name""" (at timestamptz, doc jsonb);
INSERT INTO "Odd ""name""" VALUES ('2026-01-01 12:00+02', '{"a": [1, 2]}'), (NULL, NULL);
'''
LARGE_OBJECT = "SELECT lo_from_bytea(0, 'a large object');"


def dump(database: str) -> bytes:
    """``pg_dump -Fc -Z0`` of a database, as a backup stores it (before zstd)."""
    argv = [archives.client("pg_dump"), "--format=custom", "--compress=0"]
    return subprocess.run(
        [*argv, f"--dbname={PG_DSN} dbname={database}"], check=True, capture_output=True
    ).stdout


def pieces(data: bytes, size: int = 1 << 16) -> Iterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


def info(database: str) -> Conninfo:
    return Conninfo.parse(f"{PG_DSN} dbname={database}")


def methods(facts: dict[str, queries.TableFact]) -> dict[str, str]:
    return {table: fact.method for table, fact in facts.items()}


def user_tables(database: str) -> list[str]:
    with contextlib.closing(queries.connect(info(database))) as conn:
        return sorted(queries.table_names(conn))


def comment_of(database: str) -> str | None:
    with contextlib.closing(queries.connect(info(database))) as conn:
        return queries.database_comment(conn, database)


def large_objects(database: str) -> int:
    return int(rows_of(database, "SELECT count(*) FROM pg_largeobject_metadata")[0][0])


def empty_database(db_names: Callable[[str], str]) -> str:
    name = db_names("rdst")
    create_database(name, "SELECT 1")
    return name


@pytest.fixture(params=["psql", "straight"])
def path(request: pytest.FixtureRequest) -> str:
    """Which way the restore goes: through psql, or (large objects) straight to pg_restore."""
    return str(request.param)


@pytest.fixture
def source(db_names: Callable[[str], str], path: str) -> str:
    name = db_names("rsrc")
    create_database(name, SOURCE_SQL + (LARGE_OBJECT if path == "straight" else ""))
    return name


def test_the_restore_returns_the_facts_it_hashed_before_commit_and_they_match(
    source: str, db_names: Callable[[str], str]
) -> None:
    target = empty_database(db_names)
    recorded = facts_of(source)
    got = archive_restore.restore_archive(pieces(dump(source)), info(target), methods(recorded))
    assert got.facts == recorded
    assert got.facts["public.t"].rows == 20000
    assert got.present == {"public.t", 'public."Odd ""name"""'}
    assert facts_of(target) == recorded  # committed, and the same when read afresh
    assert large_objects(target) == large_objects(source)
    assert comment_of(target) is None  # none asked for
    # Only the tables asked about are hashed, each the way it was recorded; all are listed.
    only = {"public.t": "columns:tt"}
    again = empty_database(db_names)
    as_text = archive_restore.restore_archive(pieces(dump(source)), info(again), only).facts
    assert set(as_text) == {"public.t"} and as_text["public.t"].method == "columns:tt"
    assert as_text["public.t"].digest != recorded["public.t"].digest


def test_the_comment_is_set_with_the_data_and_not_without_it(
    source: str, db_names: Callable[[str], str]
) -> None:
    target = empty_database(db_names)
    data = dump(source)
    note = "restored from backup b-1 by kosmos-backup: it's 'quoted' and :not_a_variable"
    archive_restore.restore_archive(pieces(data), info(target), {}, comment=note)
    assert comment_of(target) == note
    failed = empty_database(db_names)

    def checked_at_the_end() -> Iterator[bytes]:
        yield from pieces(data)
        raise IntegrityError("object app.dump.zst: sha256 mismatch")

    with pytest.raises(IntegrityError):
        archive_restore.restore_archive(checked_at_the_end(), info(failed), {}, comment=note)
    assert comment_of(failed) is None


def test_a_role_that_may_not_comment_still_restores(
    db_names: Callable[[str], str], path: str
) -> None:
    # A database owned by another role: the restoring role may create tables in it but
    # not comment on it. The restore goes on; the note is left unset.
    role = db_names("rrole")
    source = db_names("rsrc")
    create_database(
        source,
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1);"
        + (LARGE_OBJECT if path == "straight" else ""),
    )
    target = empty_database(db_names)
    admin = info(target)
    with contextlib.closing(queries.connect(admin)) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("GRANT CREATE, TEMPORARY ON DATABASE {} TO {}").format(
                sql.Identifier(target), sql.Identifier(role)
            )
        )
    try:
        as_role = Conninfo.parse(f"{PG_DSN} dbname={target} user={role}")
        got = archive_restore.restore_archive(pieces(dump(source)), as_role, {}, comment="note")
        assert got.present == {"public.t"}
        assert comment_of(target) is None
        assert rows_of(target, "SELECT id FROM t") == [(1,)]
    finally:
        with contextlib.closing(queries.connect(admin)) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_stream_that_fails_after_its_last_byte_commits_nothing(
    source: str, db_names: Callable[[str], str]
) -> None:
    # The sha256 is confirmed only when the stream ends, after pg_restore has had every
    # byte; its COMMIT must wait for that.
    target = empty_database(db_names)
    data = dump(source)

    def checked_at_the_end() -> Iterator[bytes]:
        yield from pieces(data)
        raise IntegrityError("object app.dump.zst: sha256 mismatch")

    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        archive_restore.restore_archive(
            checked_at_the_end(), info(target), methods(facts_of(source))
        )
    assert user_tables(target) == []
    assert large_objects(target) == 0


def test_a_cut_stream_commits_nothing(source: str, db_names: Callable[[str], str]) -> None:
    target = empty_database(db_names)
    data = dump(source)

    def cut() -> Iterator[bytes]:
        yield data[: len(data) // 2]
        raise EngineError("storage went away")

    with pytest.raises(EngineError, match="storage went away"):
        archive_restore.restore_archive(cut(), info(target), {})
    assert user_tables(target) == []


def test_an_error_in_the_restore_is_the_tools_message_and_rolls_back(
    source: str, db_names: Callable[[str], str], path: str
) -> None:
    target = db_names("rdst")
    create_database(target, "CREATE TABLE t (id int); INSERT INTO t VALUES (42);")
    with pytest.raises(EngineError) as caught:
        archive_restore.restore_archive(pieces(dump(source)), info(target), {})
    tool = "psql" if path == "psql" else "pg_restore"
    assert caught.value.message.startswith(f"{tool} failed:")
    assert 'relation "t" already exists' in caught.value.message
    assert user_tables(target) == ["public.t"]
    assert rows_of(target, "SELECT id FROM t") == [(42,)]
    assert large_objects(target) == 0


def test_in_place_replaces_the_tables_in_one_transaction(
    source: str, db_names: Callable[[str], str]
) -> None:
    target = db_names("rdst")
    create_database(
        target, "CREATE TABLE t (id int PRIMARY KEY, body text); INSERT INTO t VALUES (1, 'old');"
    )
    recorded = facts_of(source)
    got = archive_restore.restore_archive(
        pieces(dump(source)), info(target), methods(recorded), clean=True
    )
    assert got.facts == recorded
    assert rows_of(target, "SELECT count(*) FROM t") == [(20000,)]


def test_a_table_of_contents_longer_than_the_first_look_is_read_to_its_end(
    source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = dump(source)
    monkeypatch.setattr(archive_restore, "TOC_PEEK_FIRST", 64)  # far less than the TOC
    head, stream = archive_restore._peek_toc(pieces(data, 50))
    assert b"TABLE DATA public t " in head
    assert b"".join(stream) == data  # nothing read ahead is lost
