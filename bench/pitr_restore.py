"""Point-in-time restore: ours (kosmos-backup, barman-cloud) against pgBackRest, same cluster.

One scratch PostgreSQL 15 cluster (16 MiB segments) archives every segment to both tools
(``archive_command``: ``wal-push --async`` then ``pgbackrest archive-push``), both take a
base backup, then ``pgbench -i -s --scale`` loads it, a target time is noted between
commits, more writes follow, and WAL is switched. Both repositories live in one moto S3
server speaking HTTPS (pgBackRest requires TLS): a self-signed certificate made here, given
to ours as ``AWS_CA_BUNDLE`` and to pgBackRest as ``repo1-storage-ca-file``.

Then ``--runs`` times, alternating, each restores into a fresh data directory up to the
target, starts it and waits until it is promoted and accepts queries: ours is one
``kosmos-backup restore postgres latest --to T`` (which also counts every table's rows),
the peer is ``pgbackrest restore --type=time`` plus ``pg_ctl start`` and a 0.1 s poll
(pgBackRest as its guide advises for object stores: zstd, ``repo1-bundle=y`` so small
files share objects, ``process-max=2``; ``--peer-async`` adds archive-get prefetch).
Whole processes, start-up included; medians. The row counts at the target must agree
with each other and with what was written before the target. Our base backup is taken
first, so ours replays a little more WAL (the peer's backup's segments). Target 5 of
issue 14: ours <= 1.0x the peer. pgBackRest is a bench peer, not a dependency (``apt-get install -y
pgbackrest``). Run as root with ``KOSMOS_PG_PREFIX`` naming this tree's postgres-user
install (.ci/postgres-user-setup). ::

    python3 bench/pitr_restore.py [--scale 20] [--runs 3] [--peer-async]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: python3 bench/pitr_restore.py
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench import tls_moto  # noqa: E402
from tests import pgcluster  # noqa: E402
from tests.pgcluster import PgCluster, give_to_postgres, write_for_postgres  # noqa: E402
from tests.services import free_port  # noqa: E402
from workers.config_loader import load_settings  # noqa: E402
from workers.context import Context  # noqa: E402
from workers.engines.postgres import base_backups  # noqa: E402
from workers.engines.postgres.cluster import LocalInstance, as_os_user, pg_binary  # noqa: E402
from workers.engines.postgres.pitr import BIN_ENV, LOG_NAME  # noqa: E402

TARGET = 1.0
OURS_BUCKET, PEER_BUCKET = "kosmos-bench-pitr", "pgbackrest-bench-pitr"
STANZA = "bench"
MARKS_BEFORE, MARKS_AFTER, PGBENCH_AFTER = 50, 30, 200
PEER_POLL = 0.1
READY_TIMEOUT = 1800.0
INSTALL_HINT = "pgBackRest is the peer here: apt-get install -y pgbackrest (Debian 2.45)"
RESTORED_LOG = re.compile(r'restored log file "([0-9A-F]{24})" from archive')
PEER_CONF = """\
[global]
repo1-type=s3
repo1-path=/peer
repo1-s3-bucket={bucket}
repo1-s3-endpoint=127.0.0.1
repo1-storage-port={port}
repo1-s3-region=us-east-1
repo1-s3-key=bench
repo1-s3-key-secret=bench
repo1-s3-uri-style=path
repo1-storage-ca-file={cert}
repo1-retention-full=2
repo1-bundle=y
compress-type=zst
process-max=2
start-fast=y
log-level-console=warn
log-level-file=off
log-path={root}/pgbr
lock-path={root}/pgbr
spool-path={root}/pgbr
{extra}
[{stanza}]
pg1-path={data}
pg1-port={pg_port}
pg1-socket-path={socket}
"""
PEER_ASYNC = "archive-async=y\narchive-get-queue-max=256MiB\n"


def main() -> None:
    """Build the source, restore it by each tool in turn, and print the figures."""
    args = _parser().parse_args()
    if shutil.which("pgbackrest") is None:
        sys.exit(INSTALL_HINT)
    kosmos = shutil.which("kosmos-backup") or sys.exit("kosmos-backup is not on PATH")
    # SIGTERM unwinds like ^C, so every cluster, moto and directory is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    loads = [_loadavg()]
    with contextlib.ExitStack() as stack:
        root = pgcluster.scratch_dir("bench-pitr")
        stack.callback(shutil.rmtree, root, True)
        cert = tls_moto.self_signed(root)
        os.environ["AWS_CA_BUNDLE"] = str(cert.cert)  # ours, barman and restore_command
        s3 = stack.enter_context(tls_moto.server(cert))
        for bucket in (OURS_BUCKET, PEER_BUCKET):
            tls_moto.client(s3.url).create_bucket(Bucket=bucket)
        source = Source(root, s3.url, s3.port, cert.cert, args.peer_async)
        stack.callback(source.remove)
        expected = source.build(args.scale)
        restorer = Restorer(root, source, kosmos)
        stack.callback(restorer.stop_all)
        results: dict[str, list[Timing]] = {"ours": [], "peer": []}
        for run in range(args.runs):
            for who in ("peer", "ours") if run % 2 == 0 else ("ours", "peer"):
                timing = restorer.restore(who, run)
                if timing.counts != expected:
                    sys.exit(f"{who} restored {timing.counts}, expected {expected} at the target")
                results[who].append(timing)
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
        loads.append(_loadavg())
    _report(results, args, expected, loads, source.wal_mib)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=20, help="pgbench -i scale after the base")
    parser.add_argument("--runs", type=int, default=3, help="restores by each (medians)")
    parser.add_argument(
        "--peer-async",
        action="store_true",
        help="pgBackRest with archive-async=y (archive-get prefetches into its spool)",
    )
    return parser


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _as_postgres(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(as_os_user(argv), capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} … failed:\n{done.stderr[-2000:]}")
    return done


class Source:
    """The scratch cluster archiving to both tools, with both base backups taken."""

    def __init__(self, root: Path, endpoint: str, port: int, cert: Path, peer_async: bool) -> None:
        pgcluster.WAL_SEGMENT_MB = 16  # production's size; the tests' 1 MiB is for speed
        self.root = root
        self.cluster = PgCluster(root / "source")
        self.cluster.root.mkdir()
        give_to_postgres(self.cluster.root)
        self.config = pgcluster.archiving_config(
            root / "kosmos.yaml", endpoint=endpoint, bucket=OURS_BUCKET, cluster=self.cluster
        )
        self.peer_conf = write_for_postgres(
            root / "pgbackrest.conf",
            PEER_CONF.format(
                bucket=PEER_BUCKET,
                port=port,
                cert=cert,
                root=root,
                extra=PEER_ASYNC if peer_async else "",
                stanza=STANZA,
                data=self.cluster.data_dir,
                pg_port=self.cluster.port,
                socket=self.cluster.root,
            ),
        )
        (root / "pgbr").mkdir()
        give_to_postgres(root / "pgbr")
        self.wal_mib = 0.0
        self.target = datetime.now(UTC)

    def pgbackrest(self, *args: str) -> list[str]:
        """A pgbackrest argv with this bench's config and stanza."""
        return ["pgbackrest", f"--config={self.peer_conf}", f"--stanza={STANZA}", *args]

    def build(self, scale: int) -> dict[str, int]:
        """Archive, base backups, the load, the target; the row counts at the target."""
        pgcluster.ensure_postgres_install()
        ours = f"{pgcluster.KOSMOS_BIN} --config {self.config} wal-push --async %p"
        peer = " ".join(self.pgbackrest("archive-push", "%p"))
        self.cluster.settings |= {
            "archive_mode": "on",
            "archive_command": f"{ours} && {peer}",
            "max_wal_size": "1GB",
            "min_wal_size": "32MB",
        }
        self.cluster.init().start()
        _as_postgres(self.pgbackrest("stanza-create"))
        self.cluster.execute("CREATE TABLE bench_marks (n int PRIMARY KEY, at timestamptz)")
        print("base backups: ours, then pgBackRest", file=sys.stderr)
        base_backups.base_backup(Context(load_settings(self.config, environ={})), "postgres")
        _as_postgres(self.pgbackrest("--type=full", "backup"))
        start_lsn = self.cluster.execute("SELECT pg_current_wal_lsn()")[0][0]
        print(f"pgbench -i -s {scale}", file=sys.stderr)
        self.pgbench("-i", "-q", "-s", str(scale))
        self.marks(0, MARKS_BEFORE)
        time.sleep(0.05)
        self.target = datetime.now(UTC)
        time.sleep(0.05)
        self.pgbench("-n", "-t", str(PGBENCH_AFTER))
        self.marks(MARKS_BEFORE, MARKS_BEFORE + MARKS_AFTER)
        pgcluster.wait_archived(self.cluster, timeout=600)
        wal = self.cluster.execute("SELECT pg_current_wal_lsn() - %s::pg_lsn", (start_lsn,))
        self.wal_mib = float(wal[0][0]) / (1 << 20)
        expected = {"accounts": scale * 100_000, "history": 0, "marks": MARKS_BEFORE}
        print(f"target {self.target.isoformat()}: {expected}", file=sys.stderr)
        return expected

    def pgbench(self, *args: str) -> None:
        """pgbench against the source (its own commits, not timed)."""
        subprocess.run(["pgbench", *args, self.cluster.dsn], check=True, capture_output=True)

    def marks(self, first: int, end: int) -> None:
        """One commit per row, so the target falls between commits."""
        with psycopg.connect(self.cluster.dsn, autocommit=True) as conn:
            for n in range(first, end):
                conn.execute("INSERT INTO bench_marks VALUES (%s, clock_timestamp())", (n,))

    def remove(self) -> None:
        """Stop the source (immediately) and delete its directory."""
        self.cluster.remove()


@dataclass
class Timing:
    """One restore: its wall time, its phases, the counts it reached, WAL it replayed."""

    seconds: float
    ready: float
    phases: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    segments: int = 0


class Restorer:
    """Fresh data directories, the two timed restores, and the instances to stop."""

    def __init__(self, root: Path, source: Source, kosmos: str) -> None:
        self.root, self.source, self.kosmos = root, source, kosmos
        self.instances: list[LocalInstance] = []

    def restore(self, who: str, run: int) -> Timing:
        """Restore by ``who`` into a new directory; count, stop and delete it after."""
        base = self.root / f"{who}-{run}"
        base.mkdir()
        give_to_postgres(base)
        port = free_port()
        try:
            if who == "ours":
                timing = self.ours(base / "data", port)
            else:
                timing = self.peer(base / "data", port)
            timing.counts = counts(port)
        finally:
            self.stop_all()
            shutil.rmtree(base, ignore_errors=True)
        return timing

    def ours(self, data: Path, port: int) -> Timing:
        """``kosmos-backup restore postgres latest --to T``: one process, to its exit."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")}
        # An installed wheel runs from compiled bytecode; a source tree kept from writing
        # any would recompile every module of ours on every start.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env[BIN_ENV] = pgcluster.KOSMOS_BIN  # restore_command runs this tree's install
        argv = [self.kosmos, "--config", str(self.source.config), "restore", "postgres"]
        argv += ["latest", "--to", self.source.target.isoformat()]
        argv += ["--data-dir", str(data), "--port", str(port)]
        self.instances.append(LocalInstance(str(data), port, ""))
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            lines, reader = _timed_lines(proc, started)
            assert proc.stdout is not None
            out = proc.stdout.read()
            proc.wait(READY_TIMEOUT)
        finally:
            if proc.poll() is None:  # interrupted: the restore must not outlive the bench
                proc.kill()
                proc.wait()
        seconds = time.monotonic() - started
        reader.join(10)
        if proc.returncode != 0:
            tail = "\n".join(line for _, line in lines[-20:])
            raise RuntimeError(f"our restore failed ({proc.returncode}):\n{tail}\n{out!r}")
        phases = _phases(lines, seconds)
        ready = seconds - phases.get("verify (row counts)", 0.0)
        return Timing(seconds, ready, phases, segments=_restored(data / LOG_NAME))

    def peer(self, data: Path, port: int) -> Timing:
        """``pgbackrest restore --type=time`` then ``pg_ctl start``, until promoted."""
        data.mkdir(mode=0o700)
        give_to_postgres(data)
        argv = self.source.pgbackrest(f"--pg1-path={data}", "--type=time")
        target = self.source.target.strftime("%Y-%m-%d %H:%M:%S.%f+00")
        argv += [f"--target={target}", "--target-action=promote"]
        argv += ["--archive-mode=off", "restore"]
        log = data.parent / "postgres.log"
        self.instances.append(LocalInstance(str(data), port, str(log)))
        started = time.monotonic()
        _as_postgres(argv, timeout=READY_TIMEOUT)
        restored = time.monotonic() - started
        options = f"-p {port} -k {data.parent}"
        _as_postgres([pg_binary("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "start"])
        _wait_promoted(port, log)
        seconds = time.monotonic() - started
        phases = {"pgbackrest restore": restored, "start, WAL replay, promote": seconds - restored}
        return Timing(seconds, seconds, phases, segments=_restored(log))

    def stop_all(self) -> None:
        """Stop every restored instance this bench started (immediate: it is thrown away)."""
        while self.instances:
            with contextlib.suppress(Exception):
                self.instances.pop().stop(mode="immediate")


def _timed_lines(
    proc: subprocess.Popen[bytes], started: float
) -> tuple[list[tuple[float, str]], threading.Thread]:
    """A list that a thread fills with (seconds since ``started``, line) from stderr."""
    lines: list[tuple[float, str]] = []

    def drain() -> None:
        assert proc.stderr is not None
        for raw in iter(proc.stderr.readline, b""):
            lines.append((time.monotonic() - started, raw.decode(errors="replace").rstrip()))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    return lines, reader


OUR_PHASES = {
    "restore base backup": "base backup download + extract",
    "waiting for WAL": "waiting for WAL",
    "replay WAL": "start, WAL fetch + replay, promote",
    "verify": "verify (row counts)",
}


def _phases(lines: list[tuple[float, str]], seconds: float) -> dict[str, float]:
    """Seconds in each phase our CLI announced on stderr ("… phase: note")."""
    marks = [(at, line[2:].split(":")[0]) for at, line in lines if line.startswith("… ")]
    marks = [(at, OUR_PHASES[name]) for at, name in marks if name in OUR_PHASES]
    phases = {"start-up, catalog": marks[0][0] if marks else seconds}
    for (at, name), (end, _) in zip(marks, [*marks[1:], (seconds, "")], strict=True):
        phases[name] = phases.get(name, 0.0) + end - at
    return phases


def _wait_promoted(port: int, log: Path) -> None:
    """Poll until the instance accepts queries and is out of recovery."""
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=3"
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(psycopg.OperationalError):
            with psycopg.connect(dsn, autocommit=True) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row == (False,):
                return
        text = log.read_text(errors="replace") if log.exists() else ""
        if "FATAL" in text or "PANIC" in text:
            raise RuntimeError(f"the peer's restored instance failed:\n{text[-2000:]}")
        time.sleep(PEER_POLL)
    raise TimeoutError(f"the peer's instance on {port} was not promoted in {READY_TIMEOUT}s")


def counts(port: int) -> dict[str, int]:
    """Rows at the target in the restored instance."""
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM pgbench_accounts), (SELECT count(*) FROM "
            "pgbench_history), (SELECT count(*) FROM bench_marks)"
        ).fetchone()
    assert row is not None
    return {"accounts": row[0], "history": row[1], "marks": row[2]}


def _restored(log: Path) -> int:
    """Segments the restored instance took from restore_command, per its log."""
    with contextlib.suppress(OSError):
        return len(RESTORED_LOG.findall(log.read_text(errors="replace")))
    return 0


def _report(
    results: dict[str, list[Timing]],
    args: argparse.Namespace,
    expected: dict[str, int],
    loads: list[str],
    wal_mib: float,
) -> None:
    ours, peer = results["ours"], results["peer"]
    peer_name = "pgBackRest" + (" (archive-async)" if args.peer_async else "")
    print(f"\nPITR restore, pgbench -s {args.scale} loaded after the base backups")
    print(f"({wal_mib:.0f} MiB of WAL to replay), {args.runs} runs each, medians [all runs];")
    print(f"rows at the target {expected} in both; load average {loads[0]} .. {loads[-1]}")
    _line(f"{peer_name}: to promoted", [t.seconds for t in peer])
    _line("kosmos-backup restore --to (whole process)", [t.seconds for t in ours])
    _line("kosmos-backup, until it accepts queries", [t.ready for t in ours])
    ratio = statistics.median(t.seconds for t in ours) / statistics.median(t.seconds for t in peer)
    verdict = "ok" if ratio <= TARGET else "OVER"
    print(f"  ratio ours/peer {ratio:.2f}x (target 5: <= {TARGET}x): {verdict}")
    ready = statistics.median(t.ready for t in ours) / statistics.median(t.seconds for t in peer)
    print(f"  ratio until it accepts queries (our row counts left out): {ready:.2f}x")
    for who, timings in (("ours", ours), (peer_name, peer)):
        segments = statistics.median(t.segments for t in timings)
        print(f"where {who}'s time goes (medians; {segments:.0f} WAL segments restored):")
        for name in timings[0].phases:
            _line(f"  {name}", [t.phases.get(name, 0.0) for t in timings])


def _line(what: str, values: list[float]) -> None:
    runs = ", ".join(f"{v:.2f}" for v in values)
    print(f"  {what:<46} {statistics.median(values):7.2f} s  [{runs}]")


if __name__ == "__main__":
    main()
