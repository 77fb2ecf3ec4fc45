"""Logical backup and restore of pgbench data: ours against the peers, whole processes.

Builds (or reuses) two pgbench databases at ``--scale`` (50 is about 750 MB): stock, and
"entropy", whose filler column holds random hex (real data does not compress 100:1).
Then, ``--runs`` times in alternating order (medians reported), each as a whole process
(start-up included), as a user or a scheduler sees it:

- backups: ``pg_dump -Fc`` to a file and ``pg_dump -Fc -Z0 | zstd -T2 -3`` to a file (the
  peers) vs ``kosmos-backup backup --local`` into a local store and into moto S3;
- restores: ``pg_restore`` from the ``-Fc`` file into a new database vs ``kosmos-backup
  restore --local`` from the local store (which also re-hashes every table).

Targets (issue 14): backup <= 1.15x the zstd pipeline on entropy data and <= 1.15x
``pg_dump -Fc`` on stock data; restore <= 1.0x pg_restore; peak RSS <= 150 MiB. ::

    python3 bench/postgres_backup.py [--scale 50] [--runs 3] [--data stock,entropy]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
UNSET = ("PYTHONDONTWRITEBYTECODE",)
"""Left out of our processes' environment: an installed wheel runs from compiled bytecode,
and a source tree kept from writing any recompiles every module on every start (0.1-0.2 s)."""
if str(ROOT) not in sys.path:  # run as a script: python3 bench/postgres_backup.py
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from tests.services import free_port, moto_server, wait_for_port  # noqa: E402

CONFIG = ROOT / "examples" / "kosmos-backup.yaml"
TIME_TARGET = 1.15
RESTORE_TARGET = 1.0
RSS_TARGET_MIB = 150
PG_BIN = Path("/usr/lib/postgresql/15/bin")
MIB = 1 << 20
ENTROPY_SQL = """
CREATE TABLE acc2 AS SELECT aid, bid, abalance,
  (md5(random()::text) || md5(random()::text) || substr(md5(random()::text), 1, 20))::char(84)
  AS filler FROM pgbench_accounts;
DROP TABLE pgbench_accounts;
ALTER TABLE acc2 RENAME TO pgbench_accounts;
ALTER TABLE pgbench_accounts ADD PRIMARY KEY (aid);
"""
# The whole CLI process, as the console script runs it; its peak RSS (VmHWM) is written to
# the file named by BENCH_RSS_FILE when it exits.
WRAPPER = """
import atexit, os, sys
def peak():
    hwm = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]
    open(os.environ['BENCH_RSS_FILE'], 'w').write(str(int(hwm) * 1024))
atexit.register(peak)
sys.argv = ['kosmos-backup', *sys.argv[1:]]
from bot.launch import main
main()
"""


def main() -> None:
    """Parse options and run the benchmark for each data set."""
    args = _parser().parse_args()
    with moto_server() as s3, tempfile.TemporaryDirectory(prefix="kosmos-bench-") as tmp:
        _make_bucket(s3.url)
        for data in args.data.split(","):
            database = f"kosmos_bench_{data}_s{args.scale}"
            _ensure_pgbench(args.dsn, database, args.scale, entropy=data == "entropy")
            bench = Bench(args, database, Path(tmp), s3.url, s3.proc.pid if s3.proc else 0)
            results = bench.run()
            _report(data, results, args)
            if not args.keep:
                _drop(args.dsn, database)
    if shutil.which("pgbackrest") and not args.no_pgbackrest:
        _pgbackrest_reference(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=50, help="pgbench scale (50: ~750 MB)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--data", default="stock,entropy", help="data sets, comma-separated")
    parser.add_argument("--dsn", default="host=127.0.0.1 port=5432 user=postgres")
    parser.add_argument("--keep", action="store_true", help="keep the pgbench databases")
    parser.add_argument("--no-pgbackrest", action="store_true", help="skip the reference")
    return parser


# -- the databases ---------------------------------------------------------------------------


def _admin(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(f"{dsn} dbname=postgres", autocommit=True)


def _ensure_pgbench(dsn: str, database: str, scale: int, *, entropy: bool) -> None:
    with _admin(dsn) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if exists.fetchone():
            with psycopg.connect(f"{dsn} dbname={database}") as db:
                try:
                    branches = db.execute("SELECT count(*) FROM pgbench_branches").fetchone()
                except psycopg.Error:
                    branches = None
            if branches == (scale,):
                print(f"reusing {database} (scale {scale})", file=sys.stderr)
                return
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    print(f"building {database}: pgbench -i -s {scale}", file=sys.stderr)
    target = f"{dsn} dbname={database}"
    subprocess.run(
        ["pgbench", "-i", "-q", "-s", str(scale), target], check=True, capture_output=True
    )
    if entropy:
        with psycopg.connect(target, autocommit=True) as db:
            db.execute(ENTROPY_SQL)  # type: ignore[arg-type]
            db.execute("VACUUM ANALYZE")
    with _admin(dsn) as conn:
        size = conn.execute("SELECT pg_database_size(%s)", (database,)).fetchone()
    print(f"{database}: {size[0] / MIB if size else 0:.0f} MiB on disk", file=sys.stderr)


def _drop(dsn: str, database: str) -> None:
    with _admin(dsn) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


# -- measured steps --------------------------------------------------------------------------


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (0 if unknown)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    """CPU seconds (user + system) of every child process reaped so far, and of theirs:
    the measured commands, not the PostgreSQL server's backends."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall seconds and stdout of one command; exit on failure."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])}… failed: {err.decode()[-2000:]}")
    return seconds, out.decode()


class Bench:
    """One data set's measured steps."""

    def __init__(
        self, args: argparse.Namespace, database: str, tmp: Path, endpoint: str, moto_pid: int
    ) -> None:
        self.dsn, self.database, self.tmp = args.dsn, database, tmp
        self.moto_pid = moto_pid
        self.runs = args.runs
        self.source = f"{args.dsn} dbname={database}"
        base = {
            k: v for k, v in os.environ.items() if not k.startswith("KOSMOS") and k not in UNSET
        }
        base |= {
            "PYTHONPATH": str(ROOT),
            "KOSMOS__COMPONENTS__POSTGRES__DSN": f"{args.dsn} dbname=postgres",
            "KOSMOS__COMPONENTS__POSTGRES__DATABASES": f"[{database}]",
            "BENCH_RSS_FILE": str(tmp / "rss"),
        }
        self.local = base | {"KOSMOS__STORAGE__URL": f"file://{tmp / 'store'}"}
        self.s3 = base | {
            "KOSMOS__STORAGE__URL": "s3://kosmos-bench/kosmos",
            "KOSMOS__STORAGE__ENDPOINT_URL": endpoint,
            "KOSMOS__STORAGE__REGION": "us-east-1",
            "KOSMOS__STORAGE__ACCESS_KEY_ID": "bench",
            "KOSMOS__STORAGE__SECRET_ACCESS_KEY": "bench",
        }

    def run(self) -> dict[str, list[dict[str, float]]]:
        """Every step ``runs`` times, in alternating order."""
        results: dict[str, list[dict[str, float]]] = {}
        steps = [self.peer_fc, self.peer_zstd, self.ours_local, self.ours_s3]
        restores = [self.peer_restore, self.ours_restore]
        for run in range(self.runs):
            for step in [
                *(steps if run % 2 == 0 else steps[::-1]),
                *(restores if run % 2 == 0 else restores[::-1]),
            ]:
                cpu = _children_cpu()
                name, measured = step()  # each step's children are its measured commands
                results.setdefault(name, []).append({"cpu": _children_cpu() - cpu, **measured})
            print(f"{self.database}: run {run + 1}/{self.runs} done", file=sys.stderr)
        return results

    def peer_fc(self) -> tuple[str, dict[str, float]]:
        target = self.tmp / "peer.dump"
        seconds, _ = _timed(["pg_dump", "-Fc", "--dbname", self.source, "-f", str(target)])
        return "pg_dump -Fc > file", {"seconds": seconds, "bytes": target.stat().st_size}

    def peer_zstd(self) -> tuple[str, dict[str, float]]:
        target = self.tmp / "peer.dump.zst"
        pipeline = f"pg_dump -Fc -Z0 --dbname '{self.source}' | zstd -q -T2 -3 > '{target}'"
        seconds, _ = _timed(["bash", "-o", "pipefail", "-c", pipeline])
        return "pg_dump -Z0 | zstd -T2 > file", {"seconds": seconds, "bytes": target.stat().st_size}

    def ours(self, env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
        argv = [sys.executable, "-c", WRAPPER, "--config", str(CONFIG), *args, "--local", "--json"]
        seconds, out = _timed(argv, env)
        doc = json.loads(out[out.index("{") :])
        doc["peak_rss"] = int((self.tmp / "rss").read_text())
        return seconds, doc

    def ours_local(self) -> tuple[str, dict[str, float]]:
        seconds, doc = self.ours(self.local, "backup", "postgres")
        (self.tmp / "ours.id").write_text(doc["id"])
        stored = sum(o["size"] for o in doc["objects"])
        return "ours: backup, local store", {
            "seconds": seconds,
            "bytes": stored,
            "peak_rss": doc["peak_rss"],
        }

    def ours_s3(self) -> tuple[str, dict[str, float]]:
        before = _cpu_of(self.moto_pid)
        seconds, doc = self.ours(self.s3, "backup", "postgres")
        return "ours: backup, S3 (moto)", {
            "seconds": seconds,
            "peak_rss": doc["peak_rss"],
            "moto_cpu": _cpu_of(self.moto_pid) - before,
        }

    def peer_restore(self) -> tuple[str, dict[str, float]]:
        target = f"{self.database}_peer_restore"
        _drop(self.dsn, target)
        # Into a new database, created as part of the timed work, as ours does.
        started = time.monotonic()
        with _admin(self.dsn) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(target))
            )
        argv = ["pg_restore", "--no-owner", "--single-transaction", "--exit-on-error"]
        _timed([*argv, "--dbname", f"{self.dsn} dbname={target}", str(self.tmp / "peer.dump")])
        seconds = time.monotonic() - started
        _drop(self.dsn, target)
        return "pg_restore from file", {"seconds": seconds}

    def ours_restore(self) -> tuple[str, dict[str, float]]:
        target = f"{self.database}_our_restore"
        _drop(self.dsn, target)
        backup_id = (self.tmp / "ours.id").read_text()
        seconds, doc = self.ours(
            self.local, "restore", "postgres", backup_id, "--target-database", target
        )
        _drop(self.dsn, target)
        assert doc["checksums_matched"], doc
        return "ours: restore, local store", {"seconds": seconds, "peak_rss": doc["peak_rss"]}


def _make_bucket(endpoint: str) -> None:
    from tests.conftest import s3_client

    s3_client(endpoint).create_bucket(Bucket="kosmos-bench")


# -- report ---------------------------------------------------------------------------------


def _median(items: list[dict[str, float]], key: str = "seconds") -> float:
    return statistics.median(item[key] for item in items)


def _report(
    data: str, results: dict[str, list[dict[str, float]]], args: argparse.Namespace
) -> None:
    load = os.getloadavg()[0]
    print(f"\n{data} pgbench scale {args.scale}, {args.runs} runs, whole processes, medians")
    print(f"  [all runs]; load average {load:.1f} on {os.cpu_count()} cores")
    for name, items in results.items():
        runs = ", ".join(f"{item['seconds']:.2f}" for item in items)
        line = f"  {name:<30} {_median(items):7.2f} s  [{runs}]  CPU {_median(items, 'cpu'):.2f} s"
        if "moto_cpu" in items[0]:
            line += f" (+ moto {_median(items, 'moto_cpu'):.2f} s)"
        if "bytes" in items[0]:
            line += f"  {items[0]['bytes'] / MIB:.0f} MiB"
        if "peak_rss" in items[0]:
            line += f"  peak RSS {max(i['peak_rss'] for i in items) / MIB:.0f} MiB"
        print(line)
    peer = "pg_dump -Z0 | zstd -T2 > file" if data == "entropy" else "pg_dump -Fc > file"
    for ours in ("ours: backup, local store", "ours: backup, S3 (moto)"):
        _ratio(f"{ours} vs {peer}", _median(results[ours]), _median(results[peer]), TIME_TARGET)
    _ratio(
        "restore vs pg_restore",
        _median(results["ours: restore, local store"]),
        _median(results["pg_restore from file"]),
        RESTORE_TARGET,
    )
    ours_items = [i for name, v in results.items() if name.startswith("ours") for i in v]
    peak = max(item["peak_rss"] for item in ours_items) / MIB
    print(f"  peak RSS {peak:.0f} MiB (target {RSS_TARGET_MIB}): {'ok' if peak <= 150 else 'OVER'}")


def _ratio(what: str, ours: float, peer: float, target: float) -> None:
    ratio = ours / peer if peer else float("inf")
    verdict = "ok" if ratio <= target else "OVER"
    print(f"  {what}: {ratio:.2f}x (target {target}x): {verdict}")


# -- pgBackRest reference ----------------------------------------------------------------------


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _pgbackrest_reference(args: argparse.Namespace) -> None:
    """Full backup and restore of a scratch cluster holding the same pgbench data."""
    if args.no_pgbackrest:
        return
    base = Path(tempfile.mkdtemp(prefix="kosmos-bench-pgbr-", dir="/tmp"))
    shutil.chown(base, "postgres", "postgres")
    port = free_port()
    data, repo, conf = base / "data", base / "repo", base / "pgbackrest.conf"
    conf.write_text(
        f"[global]\nrepo1-path={repo}\nlog-path={base}\nlock-path={base}\n"
        "start-fast=y\ncompress-type=zst\nprocess-max=2\nlog-level-console=warn\n"
        f"[bench]\npg1-path={data}\npg1-port={port}\npg1-socket-path={base}\n"
    )
    shutil.chown(conf, "postgres", "postgres")
    ctl = str(PG_BIN / "pg_ctl")
    try:
        subprocess.run(
            _as_postgres(
                [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
            ),
            check=True,
            capture_output=True,
        )
        with open(data / "postgresql.conf", "a") as extra:
            extra.write(
                f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{base}'\narchive_mode = on\n"
                f"archive_command = 'pgbackrest --config={conf} --stanza=bench archive-push %p'\n"
            )
        subprocess.run(
            _as_postgres([ctl, "-D", str(data), "-l", str(base / "pg.log"), "-w", "start"]),
            check=True,
            capture_output=True,
        )
        wait_for_port(port)
        dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
        subprocess.run(["pgbench", "-i", "-q", "-s", str(args.scale), dsn], check=True)
        pgbr = ["pgbackrest", f"--config={conf}", "--stanza=bench"]
        subprocess.run(_as_postgres([*pgbr, "stanza-create"]), check=True, capture_output=True)
        backups, restores = [], []
        for run in range(args.runs):
            seconds, _ = _timed(_as_postgres([*pgbr, "--type=full", "backup"]))
            backups.append(seconds)
            target = base / f"restore{run}"
            target.mkdir()
            shutil.chown(target, "postgres", "postgres")
            seconds, _ = _timed(_as_postgres([*pgbr, f"--pg1-path={target}", "restore"]))
            restores.append(seconds)
            shutil.rmtree(target)
        print("\npgBackRest (physical, whole scratch cluster, zst, process-max 2), reference:")
        print(f"  full backup {statistics.median(backups):7.2f} s  [{_joined(backups)}]")
        print(f"  restore     {statistics.median(restores):7.2f} s  [{_joined(restores)}]")
    finally:
        subprocess.run(
            _as_postgres([ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


def _joined(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
