"""PostgreSQL queries through psycopg 3: databases, snapshots, per-table row counts and hashes."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from workers.core.errors import EngineError
from workers.engines.postgres.conninfo import Conninfo

CONNECT_TIMEOUT = "10"
APPLICATION = "kosmos-backup"
# Row text depends on these settings; pinning them makes the text hash reproducible
# on any server and session.
SESSION_SETTINGS = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
)
HASH_SCHEME = "sum-hash64-columns-v1"
"""Per table: count(*) and the sum over rows of a 64-bit row hash: order-free, needs no key.

A row's hash XORs one hash per column, each seeded with the column's position: the type's
own extended hash function where it has one (``h``, fast, no text conversion), else the
hash of the value's text form (``t``: json, arrays, enums, composites). The per-column
choice is recorded as the method, ``columns:hhth``, so a check elsewhere hashes alike.
"""
METHOD_PREFIX = "columns:"

_TABLE_FILTER = """
WHERE c.relkind = 'r'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
"""
_TABLES: LiteralString = (
    "SELECT format('%I.%I', n.nspname, c.relname), n.nspname, c.relname"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace" + _TABLE_FILTER + " ORDER BY 1"
)
TABLE_LIST_JSON: LiteralString = (
    "SELECT json_build_object('present', coalesce(json_agg(t.name ORDER BY t.name), '[]'))::text"
    " FROM (" + _TABLES + ") AS t(name, nspname, relname)"
)
"""``_TABLES``' names as one JSON object, ``{"present": [...]}``, for psql to print."""
# One statement per table that returns (rows, digest), built by the server from its own
# catalog: the same text whether psycopg runs it (backups, checks) or psql does inside a
# restore's transaction (``restore_archive``). ``methods`` (jsonb, NULL for every table)
# limits the tables and gives each its recorded per-column choice.
#
# A column is hashed by the extended hash function of its type's default hash opclass
# when that function takes the type itself (bytea's takes ``internal``, date's an
# integer...); timestamptz through an exact cast to timestamp (exact in the pinned UTC
# session). A recorded 'h' on a column that has no such function now hashes its text.
_HASH_STATEMENTS: LiteralString = (
    """
WITH tables AS (
    SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name, n.nspname, c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"""
    + _TABLE_FILTER
    + """
), columns AS (
    SELECT tb.oid, a.attname,
           row_number() OVER (PARTITION BY tb.oid ORDER BY a.attnum) AS position,
           CASE WHEN hp.proname IS NOT NULL THEN format('%I.%I', hp.nspname, hp.proname)
                WHEN base = 'timestamptz'::regtype
                THEN 'pg_catalog.timestamp_hash_extended' END AS function,
           CASE WHEN hp.proname IS NULL AND base = 'timestamptz'::regtype
                THEN '::timestamp' ELSE '' END AS cast_to
    FROM tables tb
    JOIN pg_attribute a ON a.attrelid = tb.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type ty ON ty.oid = a.atttypid
    CROSS JOIN LATERAL (SELECT CASE WHEN ty.typtype = 'd' THEN ty.typbasetype
                                    ELSE a.atttypid END AS base) b
    LEFT JOIN LATERAL (
        SELECT pn.nspname, p.proname
        FROM pg_opclass oc
        JOIN pg_am am ON am.oid = oc.opcmethod AND am.amname = 'hash'
        JOIN pg_amproc ap ON ap.amprocfamily = oc.opcfamily AND ap.amprocnum = 2
            AND ap.amproclefttype = oc.opcintype AND ap.amprocrighttype = oc.opcintype
        JOIN pg_proc p ON p.oid = ap.amproc
        JOIN pg_namespace pn ON pn.oid = p.pronamespace
        WHERE oc.opcdefault AND oc.opcintype = b.base AND p.proargtypes[0] = oc.opcintype
        LIMIT 1
    ) hp ON true
), filtered AS (
    SELECT tb.*, rec.flags
    FROM tables tb
    LEFT JOIN LATERAL (
        SELECT substr(m.method, length('columns:') + 1) AS flags
        FROM (SELECT {methods}::jsonb ->> tb.name AS method) m
        WHERE m.method LIKE 'columns:%'
    ) rec ON true
    WHERE {methods}::jsonb IS NULL OR {methods}::jsonb ? tb.name
), chosen AS (
    SELECT c.*, CASE WHEN length(f.flags) = count(*) OVER (PARTITION BY f.oid)
                     THEN substr(f.flags, c.position::int, 1)
                     WHEN c.function IS NOT NULL THEN 'h' ELSE 't' END AS flag
    FROM filtered f JOIN columns c ON c.oid = f.oid
), per_table AS (
    SELECT oid, string_agg(flag, '' ORDER BY position) AS flags,
           string_agg(format('coalesce(%s, %s)',
               CASE WHEN flag = 'h' AND function IS NOT NULL
                    THEN format('%s(t.%I%s, %s)', function, attname, cast_to, position)
                    ELSE format('hashtextextended(t.%I::text, %s)', attname, position) END,
               -position), ' # ' ORDER BY position) AS row_hash
    FROM chosen GROUP BY oid
)
SELECT f.name, 'columns:' || coalesce(p.flags, '') AS method,
       format('SELECT count(*) AS n, coalesce(sum(%s), 0)::text AS digest FROM %I.%I AS t',
              coalesce(p.row_hash, '0'), f.nspname, f.relname) AS statement
FROM filtered f LEFT JOIN per_table p ON p.oid = f.oid ORDER BY f.name
"""
)


@dataclass(frozen=True)
class TableFact:
    """What a table held at one snapshot: its row count and content hash."""

    rows: int
    digest: str
    method: str

    def to_json(self) -> dict[str, Any]:
        """The form kept in a manifest's details."""
        return {"rows": self.rows, "digest": self.digest, "method": self.method}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TableFact:
        """Read back what ``to_json`` wrote."""
        return cls(int(data["rows"]), str(data["digest"]), str(data["method"]))


@contextlib.contextmanager
def pg_errors(action: str, where: str) -> Iterator[None]:
    """Translate psycopg failures into EngineError with libpq's own first line."""
    try:
        yield
    except psycopg.OperationalError as exc:
        raise EngineError(
            f"{action} {where}: {_first_line(exc)}",
            hint="check components.postgres.dsn and that the server is reachable",
        ) from exc
    except psycopg.Error as exc:
        raise EngineError(f"{action} {where}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(info: Conninfo) -> psycopg.Connection[Any]:
    """An autocommit connection with the session settings the hashes rely on."""
    extra = {"connect_timeout": CONNECT_TIMEOUT} if "connect_timeout" not in info.params else {}
    with pg_errors("cannot connect to", info.describe()):
        conn = psycopg.connect(
            make_conninfo(info.client_dsn(), **extra),
            autocommit=True,
            application_name=APPLICATION,
        )
        for statement in session_settings():
            conn.execute(statement)
    return conn


def session_settings() -> list[sql.Composed]:
    """The ``SET`` statements of SESSION_SETTINGS, for psycopg or (``.as_string()``) psql."""
    return [
        sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
        for name, value in SESSION_SETTINGS
    ]


def list_databases(conn: psycopg.Connection[Any]) -> list[str]:
    """Every database that accepts connections and is not a template."""
    with pg_errors("list databases on", _where(conn)):
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn"
            " ORDER BY datname"
        ).fetchall()
    return [row[0] for row in rows]


def server_facts(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Host, port, user and version of the server, as the connection saw them (no password)."""
    info = conn.info
    return {
        "host": info.host,
        "port": str(info.port),
        "user": info.user,
        "server_version": info.parameter_status("server_version") or "unknown",
    }


def system_identifier(conn: psycopg.Connection[Any]) -> str:
    """The cluster's system identifier: one value for every address that reaches the server."""
    with pg_errors("read the system identifier of", _where(conn)):
        row = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
    assert row is not None
    return str(row[0])


def database_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    """Whether a database of that name exists on the connection's server."""
    with pg_errors("look up database on", _where(conn)):
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def database_size(conn: psycopg.Connection[Any]) -> int:
    """Bytes on disk of the connected database: the dump's progress estimate."""
    with pg_errors("size database on", _where(conn)):
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def create_database(conn: psycopg.Connection[Any], name: str) -> None:
    """CREATE DATABASE from template0, so nothing in template1 collides with the restore."""
    with pg_errors(f"create database {name} on", _where(conn)):
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))


def database_comment(conn: psycopg.Connection[Any], name: str) -> str | None:
    """``COMMENT ON DATABASE``'s text, or None."""
    with pg_errors(f"read the comment of database {name} on", _where(conn)):
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
    return row[0] if row else None


def comment_database(conn: psycopg.Connection[Any], name: str, text: str) -> None:
    """``COMMENT ON DATABASE`` (any database of the server can be named from any other)."""
    with pg_errors(f"comment on database {name} on", _where(conn)):
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(text))
        )


def comment_this_database(text: str) -> sql.Composed:
    """``COMMENT ON DATABASE`` for the connected database, as one statement psql can run in
    a restore's transaction: a role that may not comment leaves it unset, not failed."""
    body = sql.SQL(
        "BEGIN EXECUTE format('COMMENT ON DATABASE %I IS %L', current_database(), {});"
        " EXCEPTION WHEN insufficient_privilege THEN NULL; END"
    ).format(sql.Literal(text))
    return sql.SQL("DO {}").format(sql.Literal(body.as_string()))


def drop_database(conn: psycopg.Connection[Any], name: str) -> None:
    """DROP DATABASE, disconnecting anyone still in it."""
    with pg_errors(f"drop database {name} on", _where(conn)):
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def exported_snapshot(conn: psycopg.Connection[Any]) -> Iterator[str]:
    """Open a REPEATABLE READ transaction, export its snapshot, keep it open for the block."""
    with pg_errors("export a snapshot on", _where(conn)):
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
    assert row is not None
    try:
        yield str(row[0])
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")


def table_names(conn: psycopg.Connection[Any]) -> dict[str, tuple[str, str]]:
    """Every user table (leaf tables, no extension tables): quoted name -> (schema, name)."""
    with pg_errors("list tables on", _where(conn)):
        rows = conn.execute(_TABLES).fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def row_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Exact ``count(*)`` of every user table: reads every page, hashes nothing."""
    counts = {}
    for table, parts in table_names(conn).items():
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*parts))
        with pg_errors(f"count rows of {table} on", _where(conn)):
            row = conn.execute(query).fetchone()
        assert row is not None
        counts[table] = int(row[0])
    return counts


def table_facts(
    conn: psycopg.Connection[Any], methods: Mapping[str, str] | None = None
) -> dict[str, TableFact]:
    """Row count and content hash of every user table.

    With ``methods`` (as recorded at backup time) only those tables are hashed, each
    column the way it was then. Run inside ``exported_snapshot`` to see exactly what
    pg_dump sees.
    """
    with pg_errors("list columns on", _where(conn)):
        statements = conn.execute(hash_statements(methods)).fetchall()
    facts = {}
    for table, method, statement in statements:
        with pg_errors(f"hash table {table} on", _where(conn)):
            row = conn.execute(statement).fetchone()
        assert row is not None
        facts[table] = TableFact(int(row[0]), str(row[1]), method)
    return facts


def hash_statements(methods: Mapping[str, str] | None = None) -> sql.Composed:
    """The query listing (table, method, statement) for ``table_facts``: plain SQL text
    (``.as_string()``) that psql can run inside a restore's own transaction."""
    recorded = sql.Literal(json.dumps(dict(methods)) if methods is not None else None)
    return sql.SQL(_HASH_STATEMENTS).format(methods=recorded)


def compare_facts(
    recorded: Mapping[str, Mapping[str, Any]],
    restored: Mapping[str, TableFact],
    present: Collection[str] = (),
) -> tuple[list[str], list[str]]:
    """(mismatches, notes): recorded tables missing or differing; present ones not recorded."""
    mismatches = []
    for table, data in sorted(recorded.items()):
        want = TableFact.from_json(data)
        got = restored.get(table)
        if got is None:
            mismatches.append(f"{table}: missing after restore")
        elif got.rows != want.rows:
            mismatches.append(f"{table}: {got.rows} rows, backup recorded {want.rows}")
        elif got.method != want.method:
            mismatches.append(f"{table}: columns differ ({got.method}, backup {want.method})")
        elif got.digest != want.digest:
            mismatches.append(f"{table}: content hash differs ({want.rows} rows)")
    notes = [f"{table}: not in the backup" for table in sorted(set(present) - set(recorded))]
    return mismatches, notes


def _where(conn: psycopg.Connection[Any]) -> str:
    info = conn.info
    return f"{info.user}@{info.host}:{info.port}/{info.dbname}"
