"""pg_dump custom-format archives in the repository: streamed in, listed, streamed back out."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from workers import process
from workers.core.manifest import ObjectEntry, encode_name_part
from workers.core.ports import Progress
from workers.engines.postgres import queries
from workers.engines.postgres.cluster import newest_installed
from workers.engines.postgres.conninfo import Conninfo
from workers.storage.repository import BackupWriter

DUMP_SUFFIX = ".dump"
GLOBALS = "globals.sql"
FAILED_DATABASES = "failed_databases"
"""Manifest details key: each database that failed to dump, with its error."""
PROGRESS_EVERY = 0.5
PG_DUMP_COMPRESS = "0"
"""pg_dump's zlib level inside the archive: none, so the pipeline's zstd does the work.

Re-measured with bench/postgres_backup.py (issue 14): pg_dump's zlib runs single-threaded
and was 70% of a backup's time; an uncompressed archive through our multithreaded zstd
dumps about twice as fast, stores less, and pg_restore reads it as fast as a zlib one.
The stored object is ``<db>.dump.zst``: ``zstd -d`` gives back a stock archive.
"""


class Meter:
    """Reports bytes streamed past to a Progress, at most every PROGRESS_EVERY seconds."""

    def __init__(self, progress: Progress, phase: str, total: int | None = None) -> None:
        self.progress = progress
        self.phase = phase
        self.total = total
        self.done = 0

    def __call__(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass chunks through, counting them."""
        last = time.monotonic()
        self.progress(self.phase, done_bytes=0, total_bytes=self.total)
        for chunk in chunks:
            self.done += len(chunk)
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY:
                last = now
                self.progress(self.phase, done_bytes=self.done, total_bytes=self.total)
            yield chunk
        self.progress(self.phase, done_bytes=self.done, total_bytes=self.total)


PG_WRAPPER = "/usr/share/postgresql-common/pg_wrapper"


def client(tool: str) -> str:
    """The program to run for a client tool (pg_dump, pg_restore, psql, pg_dumpall).

    What PATH finds, except Debian's pg_wrapper: a Perl script that takes 0.1 s of CPU to
    pick a version before every start (four starts a backup, on the cores pg_dump needs).
    Its choice for these tools with no cluster named is the newest installed version,
    which is taken here directly; a newer client reads and dumps older servers.
    """
    return _client(tool, os.environ.get("PATH", os.defpath))


@functools.cache
def _client(tool: str, path: str) -> str:
    found = shutil.which(tool, path=path)
    if found is None or os.path.realpath(found) != PG_WRAPPER:
        return found or tool  # not installed: the error names the tool
    return newest_installed(tool) or found


def tool_env(info: Conninfo, tool: str) -> dict[str, str]:
    """A tool's environment: the password, and a name that shows in pg_stat_activity."""
    return {**info.tool_env(), "PGAPPNAME": f"kosmos-backup {tool}"}


def dump_database(
    writer: BackupWriter, server: Conninfo, database: str, progress: Progress
) -> dict[str, Any]:
    """Stream ``pg_dump -Fc`` of one database into the backup; return the facts to record.

    Row counts and hashes are taken in the transaction whose snapshot pg_dump imports,
    concurrently with the dump: they describe exactly the data in the archive. The object
    is named after the database through ``encode_name_part``; its meta keeps the real name.
    """
    info = server.with_dbname(database)
    with contextlib.closing(queries.connect(info)) as conn:
        size = queries.database_size(conn)
        with queries.exported_snapshot(conn) as snapshot:
            argv = [
                client("pg_dump"),
                "--format=custom",
                f"--compress={PG_DUMP_COMPRESS}",
                "--no-password",
                f"--snapshot={snapshot}",
                # Never a bare positional: the name (say ``-x``) travels inside the conninfo.
                f"--dbname={info.tool_dsn()}",
            ]
            raw_archive = PG_DUMP_COMPRESS == "0"
            # A compressed archive's bytes do not measure against the size on disk.
            meter = Meter(progress, f"dump {database}", size if raw_archive else None)
            chunks = meter(process.stream_out(argv, env=tool_env(info, "pg_dump")))
            entry, facts, seconds = _write_beside_hashing(
                writer, conn, database, chunks, compress=raw_archive
            )
    return {
        "object": entry.name,
        "size_bytes": size,
        "snapshot": snapshot,
        "hash_seconds": round(seconds, 3),
        "tables": {name: fact.to_json() for name, fact in facts.items()},
    }


def _write_beside_hashing(
    writer: BackupWriter,
    conn: psycopg.Connection[Any],
    database: str,
    chunks: Iterable[bytes],
    *,
    compress: bool,
) -> tuple[ObjectEntry, dict[str, queries.TableFact], float]:
    """Store the archive while ``conn`` hashes the tables: both, or neither is kept."""
    with ThreadPoolExecutor(1, thread_name_prefix="pg-hash") as pool:
        hashing = pool.submit(_timed_facts, conn)
        try:
            entry = writer.write(
                dump_name(database),
                chunks,
                compress=compress,
                meta={
                    "database": database,
                    "format": "custom",
                    "archive_compression": archive_compression(),
                },
            )
        except BaseException:
            # Stop the hashing query: the dump failed and nothing will be committed.
            with contextlib.suppress(psycopg.Error):
                conn.cancel_safe()
            raise
        try:
            facts, seconds = hashing.result()
        except BaseException:
            # An archive with no facts to check it against is not kept.
            writer.discard(entry.name)
            raise
    return entry, facts, seconds


def archive_compression() -> str:
    """What compresses inside the archive: ``none`` (then zstd outside) or ``zlib-N``."""
    return "none" if PG_DUMP_COMPRESS == "0" else f"zlib-{PG_DUMP_COMPRESS}"


def dump_name(database: str) -> str:
    """The object name of a database's dump: any legal name maps to its own safe one."""
    return f"{encode_name_part(database)}{DUMP_SUFFIX}"


def _timed_facts(conn: Any) -> tuple[dict[str, queries.TableFact], float]:
    started = time.monotonic()
    facts = queries.table_facts(conn)
    return facts, time.monotonic() - started


def read_globals(server: Conninfo, *, role_passwords: bool) -> bytes:
    """``pg_dumpall --globals-only``: roles and tablespaces, a few kilobytes held in memory.

    Read apart from the database dumps so it can run alongside them.
    """
    target = server.maintenance()
    argv = [
        client("pg_dumpall"),
        "--globals-only",
        "--no-password",
        f"--dbname={target.tool_dsn()}",
        f"--database={target.dbname}",
    ]
    if not role_passwords:
        argv.append("--no-role-passwords")
    return process.run(argv, env=tool_env(target, "pg_dumpall"), timeout=600).stdout


def write_globals(writer: BackupWriter, script: bytes, *, role_passwords: bool) -> str:
    """Store what ``read_globals`` returned as ``globals.sql``."""
    entry = writer.write(
        GLOBALS, [script], meta={"globals": True, "role_passwords": role_passwords}
    )
    return entry.name


def list_archive(chunks: Iterable[bytes]) -> dict[str, int]:
    """Have ``pg_restore --list`` parse an archive's table of contents; count its entries."""
    with tempfile.TemporaryDirectory(prefix="kosmos-toc-") as tmp:
        toc = os.path.join(tmp, "toc.txt")
        # pg_restore stops reading after the TOC; the rest of the stream is not needed.
        process.stream_in([client("pg_restore"), "--list", f"--file={toc}"], chunks)
        with open(toc, encoding="utf-8", errors="replace") as listing:
            entries = [line for line in listing if line.strip() and not line.startswith(";")]
    return {
        "toc_entries": len(entries),
        "table_data": sum(1 for line in entries if " TABLE DATA " in line),
    }


def restore_globals(chunks: Iterable[bytes], server: Conninfo) -> list[str]:
    """Run globals.sql through psql; return the statements' errors (existing roles, say)."""
    target = server.maintenance()
    argv = [
        client("psql"),
        "--no-psqlrc",
        "--quiet",
        "--no-password",
        f"--dbname={target.tool_dsn()}",
    ]
    done = process.stream_in([*argv, "--file=-"], chunks, env=tool_env(target, "psql"))
    return [line for line in done.stderr_tail.splitlines() if "ERROR" in line]


def tool_version(tool: str) -> str:
    """``pg_dump (PostgreSQL) 15.20`` and the like."""
    return process.run([client(tool), "--version"], timeout=30).stdout.decode().strip()
