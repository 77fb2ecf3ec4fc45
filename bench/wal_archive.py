"""WAL archiving: ours (wal-push, wal-push --async) against barman-cloud-wal-archive --zstd.

Whole processes, as PostgreSQL's archive_command runs them, into one moto S3 server,
alternating ours and the peer, medians of ``--runs``:

1. one 16 MiB segment, pushed by each (per-segment cost, start-up included);
2. ``--segments`` segments made ready at once: the peer called once per segment, in
   turn (what archive_command does), against our archiver pushing them in parallel while
   ``wal-push --async`` confirms each in turn;
3. the start-up of ``wal-push --async`` alone (its segment already stored): what each
   archive_command call costs once the archiver is ahead;
4. (``--burst-scale N``) a scratch cluster (16 MiB segments) archiving with ``wal-push
   --async`` through a ``pgbench -i -s N`` burst: the backlog of ``.ready`` segments and
   ``pg_stat_archiver.failed_count`` 5 s after the burst ends (target: none, 0).

Segments are half random bytes, half zeros (WAL compresses about 2:1); target 4 is ours
<= 0.5x the peer per segment. ::

    python3 bench/wal_archive.py [--runs 3] [--segments 16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNSET = ("PYTHONDONTWRITEBYTECODE",)
"""Left out of our processes' environment: an installed wheel runs from compiled bytecode,
and a source tree kept from writing any recompiles every module on every start (0.1-0.2 s)."""
if str(ROOT) not in sys.path:  # run as a script: python3 bench/wal_archive.py
    sys.path.insert(0, str(ROOT))

from tests.conftest import s3_client  # noqa: E402
from tests.services import moto_server  # noqa: E402
from workers.engines.postgres import wal_async  # noqa: E402

SEGMENT = 16 << 20
BUCKET = "kosmos-bench-wal"
TARGET = 0.5
CONFIG = """\
storage:
  url: s3://{bucket}/kosmos
  endpoint_url: {endpoint}
  region: us-east-1
  access_key_id: bench
  secret_access_key: bench
components:
  postgres:
    kind: postgres
    frequency: 1h
    retention: 1d
    server_name: {server}
"""


def main() -> None:
    """Run the three measures and print each with the peer's figure and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--segments", type=int, default=16)
    parser.add_argument("--burst-scale", type=int, default=0, help="pgbench scale; 0: skip")
    args = parser.parse_args()
    kosmos = shutil.which("kosmos-backup") or sys.exit("kosmos-backup is not on PATH")
    peer = shutil.which("barman-cloud-wal-archive") or sys.exit("barman-cloud is not installed")
    with moto_server() as s3, tempfile.TemporaryDirectory(prefix="kosmos-bench-wal-") as tmp:
        s3_client(s3.url).create_bucket(Bucket=BUCKET)
        work = Bench(Path(tmp), s3.url, kosmos, peer)
        single: dict[str, list[float]] = {"peer": [], "ours": []}
        burst: dict[str, list[float]] = {"peer": [], "ours": []}
        confirm: list[float] = []
        for run in range(args.runs):
            order = ["peer", "ours"] if run % 2 == 0 else ["ours", "peer"]
            for who in order:
                single[who].append(work.single(who, run))
            for who in order:
                burst[who].append(work.burst(who, run, args.segments))
            confirm.append(work.confirm_only(run))
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
        if args.runs:
            _report(single, burst, confirm, args.segments)
        if args.burst_scale:
            sustained(s3.url, args.burst_scale)


def sustained(endpoint: str, scale: int) -> None:
    """A pgbench -i burst on a cluster archiving asynchronously; the backlog 5 s after."""
    from tests import pgcluster

    pgcluster.WAL_SEGMENT_MB = 16  # production's size; the tests' 1 MiB is for speed
    root = pgcluster.scratch_dir("bench-burst")
    cluster = pgcluster.PgCluster(root)
    config = pgcluster.archiving_config(
        root / "kosmos.yaml", endpoint=endpoint, bucket=BUCKET, cluster=cluster, server_name="b"
    )
    pgcluster.ensure_postgres_install()
    command = f"{pgcluster.KOSMOS_BIN} --config {config} wal-push --async %p"
    cluster.settings.update({"archive_mode": "on", "archive_command": command})
    cluster.settings |= {"max_wal_size": "1GB", "min_wal_size": "32MB"}  # >= 2 segments
    cluster.init().start()
    try:
        start_lsn = cluster.execute("SELECT pg_current_wal_lsn()")[0][0]
        began = time.monotonic()
        pgbench = ["pgbench", "-i", "-q", "-s", str(scale), cluster.dsn]
        subprocess.run(pgbench, check=True, capture_output=True)
        seconds = time.monotonic() - began
        wal = cluster.execute("SELECT pg_current_wal_lsn() - %s::pg_lsn", (start_lsn,))[0][0]
        time.sleep(5)  # the measure is the state 5 s after the burst, not a synchronisation
        status = cluster.data_dir / "pg_wal" / "archive_status"
        backlog = len(list(status.glob("*.ready")))
        row = cluster.execute("SELECT archived_count, failed_count FROM pg_stat_archiver")
    finally:
        cluster.remove()
    rate = float(wal) / (1 << 20) / seconds
    print(f"\nburst: pgbench -i -s {scale} wrote {float(wal) / (1 << 20):.0f} MiB of WAL in")
    print(f"  {seconds:.1f} s ({rate:.0f} MiB/s); 5 s later: {backlog} segments not archived,")
    print(f"  {row[0][0]} archived, failed_count {row[0][1]} (target: 0 and 0)")


class Bench:
    """Segments, configs and the timed commands, in one scratch directory."""

    def __init__(self, tmp: Path, endpoint: str, kosmos: str, peer: str) -> None:
        self.tmp, self.endpoint, self.kosmos, self.peer = tmp, endpoint, kosmos, peer
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith("KOSMOS") and k not in UNSET
        }
        self.peer_env = self.env | {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
        }

    def config(self, server: str) -> Path:
        path = self.tmp / f"{server}.yaml"
        path.write_text(CONFIG.format(bucket=BUCKET, endpoint=self.endpoint, server=server))
        return path

    def pg_wal(self, tag: str, count: int) -> tuple[Path, list[Path]]:
        """A pg_wal directory holding ``count`` fresh segments, each marked ready."""
        pg_wal = self.tmp / tag / "pg_wal"
        (pg_wal / "archive_status").mkdir(parents=True)
        paths = []
        for number in range(1, count + 1):
            path = pg_wal / f"00000001000000000000{number:04X}"
            path.write_bytes(os.urandom(SEGMENT // 2) + bytes(SEGMENT // 2))
            (pg_wal / "archive_status" / f"{path.name}.ready").touch()
            paths.append(path)
        return pg_wal, paths

    def push(self, who: str, server: str, path: Path, *extra: str) -> None:
        if who == "peer":
            argv = [self.peer, "--cloud-provider", "aws-s3", "--endpoint-url", self.endpoint]
            argv += ["--zstd", f"s3://{BUCKET}/peer", server, str(path)]
            env = self.peer_env
        else:
            argv = [self.kosmos, "--config", str(self.config(server)), "wal-push", *extra]
            argv.append(str(path))
            env = self.env
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{who} push failed: {done.stderr[-1500:]}")

    def single(self, who: str, run: int) -> float:
        _, [path] = self.pg_wal(f"single-{who}-{run}", 1)
        started = time.monotonic()
        self.push(who, f"single-{run}-{who}", path)
        return time.monotonic() - started

    def burst(self, who: str, run: int, count: int) -> float:
        pg_wal, paths = self.pg_wal(f"burst-{who}-{run}", count)
        started = time.monotonic()
        for path in paths:
            if who == "peer":
                self.push(who, f"burst-{run}-{who}", path)
            else:
                self.push(who, f"burst-{run}-{who}", path, "--async")
            # PostgreSQL's own step after a 0: the segment is done.
            ready = pg_wal / "archive_status" / f"{path.name}.ready"
            ready.rename(ready.with_suffix(".done"))
        return time.monotonic() - started

    def confirm_only(self, run: int) -> float:
        """``wal-push --async`` when the archiver has already stored the segment."""
        pg_wal, [path] = self.pg_wal(f"confirm-{run}", 1)
        wal_async.spool_of(pg_wal).mkdir()
        (wal_async.spool_of(pg_wal) / f"{path.name}.ok").touch()
        started = time.monotonic()
        self.push("ours", f"confirm-{run}", path, "--async")
        return time.monotonic() - started


def _report(
    single: dict[str, list[float]],
    burst: dict[str, list[float]],
    confirm: list[float],
    count: int,
) -> None:
    load = os.getloadavg()
    print(f"\nWAL archiving, {len(confirm)} runs, medians [all runs]; load {load[0]:.1f}")
    _line("one segment: barman-cloud-wal-archive", single["peer"])
    _line("one segment: kosmos wal-push", single["ours"])
    _ratio("wal-push per segment", single["ours"], single["peer"])
    _line(f"{count} ready: barman, one call each", burst["peer"])
    _line(f"{count} ready: archiver + wal-push --async", burst["ours"])
    _ratio("async per segment", burst["ours"], burst["peer"])
    peer_rate = count * SEGMENT / (1 << 20) / statistics.median(burst["peer"])
    ours_rate = count * SEGMENT / (1 << 20) / statistics.median(burst["ours"])
    print(f"  WAL rate: ours {ours_rate:.0f} MiB/s, barman serial {peer_rate:.0f} MiB/s")
    _line("wal-push --async start-up (already stored)", confirm)


def _line(what: str, values: list[float]) -> None:
    runs = ", ".join(f"{v:.3f}" for v in values)
    print(f"  {what:<44} {statistics.median(values):7.3f} s  [{runs}]")


def _ratio(what: str, ours: list[float], peer: list[float]) -> None:
    ratio = statistics.median(ours) / statistics.median(peer)
    verdict = "ok" if ratio <= TARGET else "OVER"
    print(f"  {what}: {ratio:.2f}x the peer (target {TARGET}x): {verdict}")


if __name__ == "__main__":
    main()
