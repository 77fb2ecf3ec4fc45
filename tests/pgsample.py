"""Sample databases on the machine's PostgreSQL for dump/restore tests (prefix kb_b1_)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.conftest import PG_DSN, db_prefix
from workers.core.config import Settings
from workers.engines.postgres import queries
from workers.engines.postgres.conninfo import Conninfo

PREFIX = db_prefix("kb_b1_")
SAMPLE_SQL = """
CREATE TABLE accounts (
    id int PRIMARY KEY, name text, balance numeric(12, 2), opened timestamptz, photo bytea
);
INSERT INTO accounts
SELECT g, 'name ' || g, g * 1.25, timestamptz '2026-01-01 00:00+00' + g * interval '1 minute',
       CASE WHEN g % 3 = 0 THEN NULL ELSE decode(md5(g::text) || '00ff00', 'hex') END
FROM generate_series(1, 2000) AS g;
UPDATE accounts SET name = NULL WHERE id % 7 = 0;

-- no primary key, duplicate rows, a column named t, json (no hash function: text method)
CREATE TABLE events (t int, kind text, payload json, at timestamp, score float8);
INSERT INTO events VALUES
    (1, 'login', '{"ip": "10.0.0.1"}', '2026-01-01 10:00', 0.1),
    (1, 'login', '{"ip": "10.0.0.1"}', '2026-01-01 10:00', 0.1),
    (NULL, NULL, NULL, NULL, NULL),
    (2, 'logout', '[1, 2, 3]', '2026-01-01 11:00', 1e-300);

CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed Case" (v text, n int[]);
INSERT INTO "Odd Schema"."Mixed Case" VALUES ('a''b', '{1,NULL,3}'), (NULL, NULL);

CREATE TABLE big (id bigint, body text);
INSERT INTO big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 150000) AS g;

CREATE TABLE empty_one (id int);
"""


def admin(dbname: str = "postgres") -> psycopg.Connection[Any]:
    """An autocommit connection to the machine's PostgreSQL."""
    return psycopg.connect(f"{PG_DSN} dbname={dbname}", autocommit=True)


def database_exists(name: str) -> bool:
    """Whether the database exists on the machine's PostgreSQL."""
    with admin() as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


def scratch_databases(source: str) -> list[str]:
    """Databases that deep verification of ``source`` left (never any after a run)."""
    with admin() as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'kb\\_verify\\_%'")
        return [row[0] for row in rows.fetchall() if row[0].endswith(f"_{source}")]


def drop_database(name: str) -> None:
    """Drop a database if it exists, kicking out sessions."""
    with admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def create_database(name: str, script: str = SAMPLE_SQL) -> None:
    """Create a database and run a script in it."""
    with admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with admin(name) as conn:
        conn.execute(script)  # type: ignore[arg-type]


def facts_of(database: str) -> dict[str, queries.TableFact]:
    """Every user table's row count and hash, read afresh."""
    info = Conninfo.parse(f"{PG_DSN} dbname={database}")
    with contextlib.closing(queries.connect(info)) as conn:
        return queries.table_facts(conn)


def rows_of(database: str, query: str) -> list[tuple[Any, ...]]:
    """Rows of a query in one database."""
    with admin(database) as conn:
        return conn.execute(query).fetchall()  # type: ignore[arg-type]


@contextlib.contextmanager
def databases() -> Iterator[Callable[[str], str]]:
    """Hands out fresh database names with our prefix; drops every one at the end."""
    names: list[str] = []

    def fresh(tag: str) -> str:
        name = f"{PREFIX}{tag}_{secrets.token_hex(3)}"
        names.append(name)
        return name

    try:
        yield fresh
    finally:
        for name in names:
            drop_database(name)


@pytest.fixture
def db_names() -> Iterator[Callable[[str], str]]:
    """``db_names(tag)`` -> a new database name, dropped after the test."""
    with databases() as fresh:
        yield fresh


@pytest.fixture
def sample_db(db_names: Callable[[str], str]) -> str:
    """A database holding the sample tables."""
    name = db_names("src")
    create_database(name)
    return name


def postgres_settings(
    make_settings: Callable[..., Settings],
    database: str,
    env: dict[str, str] | None = None,
    dsn: str = f"{PG_DSN} dbname=postgres",
) -> Settings:
    """Settings whose postgres component dumps ``database`` from ``dsn``."""
    return make_settings(
        env=env,
        **{"components.postgres.dsn": dsn, "components.postgres.databases": f"[{database}]"},
    )


def pg_env(database: str, dsn: str = f"{PG_DSN} dbname=postgres") -> dict[str, str]:
    """The same as environment overrides, for the CLI."""
    return {
        "KOSMOS__COMPONENTS__POSTGRES__DSN": dsn,
        "KOSMOS__COMPONENTS__POSTGRES__DATABASES": f"[{database}]",
    }
