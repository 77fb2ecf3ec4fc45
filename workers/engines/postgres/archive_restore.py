"""Restoring a pg_dump archive from a stream: one transaction that commits only once the
stream's sha256 is confirmed, the tables hashed inside it (``restore_archive``)."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from psycopg import sql

from workers import process
from workers.core.errors import EngineError
from workers.engines.postgres import queries
from workers.engines.postgres.archives import client, tool_env, tool_version
from workers.engines.postgres.conninfo import Conninfo


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
