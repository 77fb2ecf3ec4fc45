"""Per-table facts of a whole cluster pinned to one WAL position, to check a restore against.

A base backup is fuzzy: it is consistent only at some WAL position after it ends. To compare
a restored copy with the source we record, right after the backup, every table's row count
and hash in REPEATABLE READ snapshots of every database, and the WAL insert position. If no
write transaction was in flight or committed while those snapshots were taken (a quiet
moment), replaying WAL up to that position gives exactly what the snapshots saw.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg

from workers.engines.postgres import queries
from workers.engines.postgres.conninfo import Conninfo

T = TypeVar("T")
QUIET_TRIES = 10
QUIET_PAUSE = 0.2


@dataclass
class ClusterFacts:
    """Table facts per database, the WAL position they hold at, and whether that is exact."""

    lsn: str
    exact: bool
    tables: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def table_count(self) -> int:
        """Tables across all databases."""
        return sum(len(t) for t in self.tables.values())

    @property
    def row_count(self) -> int:
        """Rows across all databases."""
        return sum(int(f["rows"]) for t in self.tables.values() for f in t.values())


def databases(info: Conninfo, configured: Sequence[str]) -> list[str]:
    """The configured databases, or every database that accepts connections."""
    if configured:
        return list(configured)
    with contextlib.closing(queries.connect(info.maintenance())) as conn:
        return queries.list_databases(conn)


def facts_at_one_point(info: Conninfo, names: Sequence[str], mark: str) -> ClusterFacts:
    """Table facts of ``names`` at one WAL position; ``exact`` when a quiet moment was found.

    ``mark`` names a restore point written just after that position: a replay told to stop
    before the first record at the position needs some record there to see.
    """
    with contextlib.ExitStack() as stack:
        conns = {
            db: stack.enter_context(contextlib.closing(queries.connect(info.with_dbname(db))))
            for db in names
        }
        watcher = stack.enter_context(contextlib.closing(queries.connect(info.maintenance())))
        lsn, exact = _pin(conns, watcher)
        try:
            tables = {
                db: {t: f.to_json() for t, f in queries.table_facts(conn).items()}
                for db, conn in conns.items()
            }
        finally:
            for conn in conns.values():
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
        _mark_and_switch(watcher, mark)
    return ClusterFacts(lsn=lsn, exact=exact, tables=tables)


def _pin(
    conns: dict[str, psycopg.Connection[Any]], watcher: psycopg.Connection[Any]
) -> tuple[str, bool]:
    """Open a snapshot on every connection; retry until no write transaction overlapped."""
    lsn = "0/0"
    for attempt in range(QUIET_TRIES):
        snapshots, positions = [], []
        for conn in conns.values():
            with queries.pg_errors("open a snapshot on", conn.info.dbname):
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                row = conn.execute(
                    "SELECT pg_current_snapshot()::text, pg_current_wal_insert_lsn()::text"
                ).fetchone()
            assert row is not None
            snapshots.append(row[0])
            positions.append(row[1])
        after = watcher.execute("SELECT pg_current_snapshot()::text").fetchone()
        assert after is not None
        lsn = max(positions, key=lsn_value)
        if _quiet([*snapshots, after[0]]):
            return lsn, True
        if attempt < QUIET_TRIES - 1:
            for conn in conns.values():
                conn.execute("ROLLBACK")
            time.sleep(QUIET_PAUSE)
    return lsn, False


def _quiet(snapshots: list[str]) -> bool:
    # "xmin:xmax:xip": no transaction in progress (xmin == xmax, no xip) and none started
    # in between (every snapshot has the same xmax).
    parts = [s.split(":") for s in snapshots]
    return all(p[0] == p[1] and p[2] == "" for p in parts) and len({p[1] for p in parts}) == 1


def _mark_and_switch(conn: psycopg.Connection[Any], mark: str) -> None:
    # Close the segment holding the pinned position so a check can replay to it soon;
    # without the privileges, later writes and archive_timeout get there eventually.
    with contextlib.suppress(psycopg.Error):
        conn.execute("SELECT pg_create_restore_point(%s)", (mark,))
    with contextlib.suppress(psycopg.Error):
        conn.execute("SELECT pg_switch_wal()")


def lsn_value(lsn: str) -> int:
    """``16/B374D848`` as one integer, for comparisons."""
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def counts_now(info: Conninfo, names: Sequence[str]) -> dict[str, dict[str, int]]:
    """Exact row counts of every table of every named database as it is now."""
    return _each_database(info, names, queries.row_counts)


def facts_now(info: Conninfo, names: Sequence[str]) -> dict[str, dict[str, queries.TableFact]]:
    """Table facts of every named database as it is now (a restored copy)."""
    return _each_database(info, names, queries.table_facts)


def _each_database(
    info: Conninfo, names: Sequence[str], read: Callable[[psycopg.Connection[Any]], T]
) -> dict[str, T]:
    """``read`` over a connection to each named database in turn."""
    found = {}
    for db in names:
        with contextlib.closing(queries.connect(info.with_dbname(db))) as conn:
            found[db] = read(conn)
    return found
