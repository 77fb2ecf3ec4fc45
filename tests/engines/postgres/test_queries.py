"""Per-table row counts and content hashes on the machine's PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import psycopg
import pytest

from tests.conftest import PG_DSN
from tests.pgsample import admin, create_database, facts_of
from workers.core.errors import EngineError
from workers.engines.postgres import queries
from workers.engines.postgres.conninfo import Conninfo


def test_every_user_table_is_counted_and_columns_without_hash_use_text(sample_db: str) -> None:
    facts = facts_of(sample_db)
    assert set(facts) == {
        "public.accounts",
        "public.events",
        "public.big",
        "public.empty_one",
        '"Odd Schema"."Mixed Case"',
    }
    assert facts["public.accounts"].rows == 2000
    assert facts["public.events"].rows == 4
    # t int, kind text, payload json (no hash function: its text), at timestamp, score float8
    assert facts["public.events"].method == "columns:hhthh"
    assert facts["public.accounts"].method == "columns:hhhht"  # bytea: its hex text
    assert facts['"Odd Schema"."Mixed Case"'].method == "columns:ht"  # arrays hash as text
    assert facts["public.empty_one"] == queries.TableFact(0, "0", "columns:h")


def test_row_counts_are_exact_and_agree_with_the_facts(sample_db: str) -> None:
    info = Conninfo.parse(f"{PG_DSN} dbname={sample_db}")
    with contextlib.closing(queries.connect(info)) as conn:
        counts = queries.row_counts(conn)
    # the odd schema and table names are quoted the same way in both
    assert counts == {name: fact.rows for name, fact in facts_of(sample_db).items()}
    assert counts["public.accounts"] == 2000 and counts["public.empty_one"] == 0


def test_hash_ignores_row_order_but_sees_duplicates_and_changes(
    db_names: Callable[[str], str],
) -> None:
    one, two = db_names("order"), db_names("order")
    create_database(
        one, "CREATE TABLE t (a int, b text); INSERT INTO t VALUES (1,'x'),(2,NULL),(2,NULL);"
    )
    create_database(
        two, "CREATE TABLE t (a int, b text); INSERT INTO t VALUES (2,NULL),(1,'x'),(2,NULL);"
    )
    assert facts_of(one) == facts_of(two)
    with admin(two) as conn:
        conn.execute("DELETE FROM t WHERE ctid = (SELECT min(ctid) FROM t WHERE a = 2)")
        conn.execute("INSERT INTO t VALUES (1, 'x')")  # same count, one duplicate swapped
    assert facts_of(two)["public.t"].rows == 3
    assert facts_of(two)["public.t"].digest != facts_of(one)["public.t"].digest


def test_text_hash_does_not_depend_on_the_session_time_zone(
    db_names: Callable[[str], str],
) -> None:
    name = db_names("tz")
    create_database(
        name,
        "CREATE TABLE j (at timestamptz, doc json); "
        "INSERT INTO j VALUES ('2026-01-01 12:00+00', '{}');"
        f"ALTER DATABASE {name} SET TimeZone = 'Asia/Tokyo';",
    )
    before = facts_of(name)
    with admin() as conn:
        conn.execute(f"ALTER DATABASE {name} SET TimeZone = 'America/New_York'")
    assert facts_of(name) == before
    assert before["public.j"].method == "columns:ht"


def test_facts_in_an_exported_snapshot_ignore_later_commits(sample_db: str) -> None:
    info = Conninfo.parse(f"{PG_DSN} dbname={sample_db}")
    with contextlib.closing(queries.connect(info)) as conn:
        with queries.exported_snapshot(conn) as snapshot:
            with admin(sample_db) as other:
                other.execute("INSERT INTO empty_one VALUES (1)")
            # a second session importing the snapshot sees the same past
            with psycopg.connect(f"{PG_DSN} dbname={sample_db}") as importer:
                importer.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                importer.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                row = importer.execute("SELECT count(*) FROM empty_one").fetchone()
            assert row == (0,)
            assert queries.table_facts(conn)["public.empty_one"].rows == 0
        assert queries.table_facts(conn)["public.empty_one"].rows == 1


def test_compare_reports_missing_different_and_extra_tables() -> None:
    recorded = {
        "public.a": {"rows": 1, "digest": "10", "method": "columns:h"},
        "public.b": {"rows": 2, "digest": "20", "method": "columns:h"},
        "public.c": {"rows": 3, "digest": "30", "method": "columns:t"},
        "public.d": {"rows": 4, "digest": "40", "method": "columns:h"},
    }
    restored = {
        "public.a": queries.TableFact(1, "10", "columns:h"),
        "public.b": queries.TableFact(2, "21", "columns:h"),
        "public.d": queries.TableFact(4, "40", "columns:hh"),
    }
    mismatches, notes = queries.compare_facts(
        recorded, restored, ["public.a", "public.b", "public.z"]
    )
    assert mismatches == [
        "public.b: content hash differs (2 rows)",
        "public.c: missing after restore",
        "public.d: columns differ (columns:hh, backup columns:h)",
    ]
    assert notes == ["public.z: not in the backup"]


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("host=127.0.0.1 port=1 user=postgres", "Connection refused"),
        (f"{PG_DSN} dbname=kb_b1_does_not_exist", 'database "kb_b1_does_not_exist" does not exist'),
        ("host=127.0.0.1 port=5432 user=kb_b1_no_such_role password=hunter2", "kb_b1_no_such_role"),
    ],
)
def test_connection_failures_become_engine_errors_without_the_password(
    dsn: str, expected: str
) -> None:
    with pytest.raises(EngineError) as caught:
        queries.connect(Conninfo.parse(dsn))
    assert expected in caught.value.message
    assert caught.value.message.startswith("cannot connect to")
    assert "hunter2" not in caught.value.one_line()


def test_swapped_columns_and_moved_nulls_change_the_hash(db_names: Callable[[str], str]) -> None:
    names = [db_names("swap") for _ in range(3)]
    rows = ["(1, 2)", "(2, 1)", "(NULL, 1)"]
    for name, row in zip(names, rows, strict=True):
        create_database(name, f"CREATE TABLE p (a int, b int); INSERT INTO p VALUES {row};")
    digests = {facts_of(name)["public.p"].digest for name in names}
    assert len(digests) == 3
    with admin(names[2]) as conn:
        conn.execute("UPDATE p SET a = 1, b = NULL")
    assert facts_of(names[2])["public.p"].digest not in digests


def test_a_recorded_method_is_followed(db_names: Callable[[str], str]) -> None:
    name = db_names("method")
    create_database(name, "CREATE TABLE m (a int); INSERT INTO m VALUES (7);")
    info = Conninfo.parse(f"{PG_DSN} dbname={name}")
    with contextlib.closing(queries.connect(info)) as conn:
        native = queries.table_facts(conn)["public.m"]
        as_text = queries.table_facts(conn, methods={"public.m": "columns:t"})["public.m"]
    assert native.method == "columns:h" and as_text.method == "columns:t"
    assert native.digest != as_text.digest and native.rows == as_text.rows == 1
