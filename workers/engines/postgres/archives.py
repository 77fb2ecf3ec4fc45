"""pg_dump custom-format archives in the repository: streamed in, listed, streamed back out."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from workers import process
from workers.core.errors import EngineError
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


@dataclass(frozen=True)
class Restored:
    """What a restore found in the database: the facts of the tables it was asked to hash,
    and every user table present."""

    facts: dict[str, queries.TableFact]
    present: frozenset[str]


@dataclass(frozen=True)
class _Into:
    """Where and how an archive is restored: ``restore_archive``'s arguments for one way."""

    target: Conninfo
    methods: Mapping[str, str]
    clean: bool
    comment: str | None


def restore_archive(
    chunks: Iterable[bytes],
    target: Conninfo,
    methods: Mapping[str, str],
    *,
    clean: bool = False,
    comment: str | None = None,
) -> Restored:
    """Restore an archive in one transaction that commits only once the stream's sha256 is
    confirmed; hash the tables ``methods`` names; set ``comment`` on the database.

    Through psql (``_through_psql``) unless the archive holds large objects: pg_restore's
    script writes those as SQL hex literals, 2.5x slower than its own large-object calls
    (200 MB of them: 10.0 s against 4.0 s), so such archives go straight into pg_restore.
    Through psql, the comment commits with the data; straight, just after it.
    """
    head, stream = _peek_toc(chunks)
    way = _straight if LARGE_OBJECTS.search(head) else _through_psql
    return way(stream, _Into(target, methods, clean, comment))


TOC_PEEK_FIRST = 1 << 20
TOC_PEEK_LIMIT = 64 << 20
LARGE_OBJECTS = re.compile(rb"^\d+; \d+ \d+ BLOBS ", re.MULTILINE)
"""The TOC entry (``pg_restore --list``) that carries an archive's large objects' data."""


def _peek_toc(chunks: Iterable[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """``pg_restore --list`` of the archive's start (its TOC comes first), and the whole
    stream still to be read. An unreadable start lists as nothing: the restore says why."""
    source = iter(chunks)
    taken: list[bytes] = []
    size, want, ended = 0, TOC_PEEK_FIRST, False
    while True:
        while size < want and not ended:
            chunk = next(source, None)
            ended = chunk is None
            if chunk is not None:
                taken.append(chunk)
                size += len(chunk)
        listed = process.run(
            [client("pg_restore"), "--list"], input_bytes=b"".join(taken), check=False
        )
        if listed.returncode == 0 or ended or want >= TOC_PEEK_LIMIT:
            head = listed.stdout if listed.returncode == 0 else b""
            return head, itertools.chain(taken, source)
        want *= 4


def _straight(chunks: Iterable[bytes], into: _Into) -> Restored:
    """``pg_restore --single-transaction`` into the server, the tables hashed after it."""
    argv = [
        client("pg_restore"),
        "--no-owner",
        "--no-password",
        "--single-transaction",
        "--exit-on-error",
        f"--dbname={into.target.tool_dsn()}",
    ]
    if into.clean:
        argv += ["--clean", "--if-exists"]
    process.stream_in(argv, _last_after_checks(chunks), env=tool_env(into.target, "pg_restore"))
    with contextlib.closing(queries.connect(into.target)) as conn:
        facts = queries.table_facts(conn, into.methods)
        present = frozenset(queries.table_names(conn))
        if into.comment is not None:
            conn.execute(queries.comment_this_database(into.comment))
    return Restored(facts, present)


def _last_after_checks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The chunks, the last one held until the source ran out cleanly (its sha256 checked):
    pg_restore cannot finish the archive, and so cannot COMMIT, before that."""
    source = iter(chunks)
    held = next(source, None)
    for chunk in source:
        assert held is not None
        yield held
        held = chunk
    if held is not None:
        yield held


def _through_psql(chunks: Iterable[bytes], into: _Into) -> Restored:
    """``pg_restore --single-transaction --file=-`` run by psql, its COMMIT held back.

    psql sends COPY data in 8 KiB messages; pg_restore sends a -Z0 archive's rows one
    message each, and the load ran 10-15% slower. psql first hashes the tables (own,
    uncommitted rows: no hint bits to set), lists them and sets the comment; COMMIT follows
    only once the stream's sha256 is confirmed and pg_restore exited cleanly. Any failure
    kills psql first, and the server rolls everything back, the comment with it.
    """
    restore = [client("pg_restore"), "--no-owner", "--single-transaction", "--file=-"]
    if into.clean:
        restore += ["--clean", "--if-exists"]
    psql = [
        client("psql"),
        "--no-psqlrc",
        "--quiet",
        "--no-password",
        "--set=ON_ERROR_STOP=1",
        "--output=/dev/null",  # the script's own SELECTs; the epilogue's \o brings it back
        f"--dbname={into.target.tool_dsn()}",
    ]
    epilogue = _epilogue(into.methods, into.comment)
    done = process.stream_through(
        restore,
        psql,
        chunks,
        edit_tail=lambda tail: _without_commit(tail) + epilogue,
        finish=b"COMMIT;\n",
        env=tool_env(into.target, "pg_restore"),
    )
    facts, present = {}, frozenset[str]()
    for line in done.stdout.decode().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        if "present" in item:
            present = frozenset(item["present"])
        else:
            fact = queries.TableFact(int(item["rows"]), str(item["digest"]), item["method"])
            facts[str(item["table"])] = fact
    return Restored(facts, present)


SCRIPT_COMMIT = b"\nCOMMIT;\n"


def _without_commit(tail: bytes) -> bytes:
    """The end of a ``--single-transaction`` script with its final COMMIT taken out."""
    at = tail.rfind(SCRIPT_COMMIT)
    if at < 0:
        raise EngineError(
            "pg_restore's script did not end with its COMMIT; nothing was committed",
            hint="check the pg_restore version: " + tool_version("pg_restore"),
        )
    return tail[: at + 1] + tail[at + len(SCRIPT_COMMIT) :]


def _epilogue(methods: Mapping[str, str], comment: str | None) -> bytes:
    """psql lines run inside the restore's transaction, before its COMMIT: each table's facts
    and the list of tables, printed as JSON objects; then the database's comment, if any."""
    settings = "".join(f"{statement.as_string()};\n" for statement in queries.session_settings())
    each = sql.SQL(
        "SELECT format('SELECT json_build_object(''table'', %L, ''method'', %L,"
        " ''rows'', q.n, ''digest'', q.digest)::text FROM (%s) q',"
        " s.name, s.method, s.statement) FROM ({}) s"
    ).format(queries.hash_statements(methods))
    meta = ["\\o", "\\pset format unaligned", "\\pset tuples_only on"]
    lines = [*meta, settings, each.as_string(), "\\gexec", f"{queries.TABLE_LIST_JSON};"]
    if comment is not None:
        lines.append(f"{queries.comment_this_database(comment).as_string()};")
    return "\n".join([*lines, ""]).encode()


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
