"""Logical backup and restore of a pgbench database: ours (into moto S3) against the peers.

Builds (or reuses) a pgbench database at ``--scale`` (50 is about 750 MB), then runs, in
alternating order and ``--runs`` times (median reported):

- ``pg_dump -Fc`` into a local file (the peer and the practical limit) vs our logical backup
  into a moto S3 server (``engine.backup`` in a child process, whose peak RSS is measured);
- ``pg_restore`` from that file vs our restore from the store (``engine.restore``, which also
  re-hashes every table to prove the restore);
- when ``pgbackrest`` is installed, a pgBackRest full backup and restore of a scratch cluster
  holding the same pgbench data, for reference.

Targets: ours <= 1.15 x the peer's wall time, our peak RSS <= 150 MiB::

    python3 bench/postgres_backup.py [--scale 50] [--runs 3] [--threads 2] [--part-size-mib 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: python3 bench/postgres_backup.py
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from tests.services import free_port, moto_server, wait_for_port  # noqa: E402

CONFIG = ROOT / "examples" / "kosmos-backup.yaml"
TIME_TARGET = 1.15
RSS_TARGET_MIB = 150
PG_BIN = Path("/usr/lib/postgresql/15/bin")
MIB = 1 << 20


def main() -> None:
    """Parse options and run the benchmark (or, with --probe, one measured step)."""
    args = _parser().parse_args()
    if args.probe:
        _probe(args.probe, args.probe_arg)
        return
    database = args.database or f"kosmos_bench_s{args.scale}"
    _ensure_pgbench(args.dsn, database, args.scale)
    results: dict[str, list[dict[str, float]]] = {}
    with moto_server() as s3, tempfile.TemporaryDirectory(prefix="kosmos-bench-") as tmp:
        env = _child_env(args, s3.url, database)
        _make_bucket(s3.url)
        for run in range(args.runs):
            forward = run % 2 == 0
            backups = [_peer_backup, _our_backup] if forward else [_our_backup, _peer_backup]
            for step in backups:
                name, measured = step(args.dsn, database, Path(tmp), env)
                results.setdefault(name, []).append(measured)
            restores = [_peer_restore, _our_restore] if forward else [_our_restore, _peer_restore]
            for step in restores:
                name, measured = step(args.dsn, database, Path(tmp), env)
                results.setdefault(name, []).append(measured)
            print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
    _report(results, args)
    if shutil.which("pgbackrest"):
        _pgbackrest_reference(args)
    else:
        print("\npgBackRest: not installed (apt-get install pgbackrest), reference skipped")
    if not args.keep:
        _drop(args.dsn, database)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=50, help="pgbench scale (50: ~750 MB)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--dsn", default="host=127.0.0.1 port=5432 user=postgres")
    parser.add_argument("--database", help="pgbench database name (kosmos_bench_s<scale>)")
    parser.add_argument("--keep", action="store_true", help="keep the pgbench database")
    parser.add_argument("--threads", help="compression.threads for our backup")
    parser.add_argument("--level", help="compression.level for our backup")
    parser.add_argument("--part-size-mib", help="storage.part_size_mib")
    parser.add_argument("--concurrency", help="storage.max_concurrency")
    parser.add_argument(
        "--pg-dump-compress",
        help="pg_dump's own zlib level inside the archive (ours: 0, then zstd in the pipeline)",
    )
    parser.add_argument("--no-pgbackrest", action="store_true", help="skip the reference")
    parser.add_argument("--probe", choices=["backup", "restore"], help=argparse.SUPPRESS)
    parser.add_argument("--probe-arg", help=argparse.SUPPRESS)
    return parser


# -- the database ----------------------------------------------------------------------------


def _admin(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(f"{dsn} dbname=postgres", autocommit=True)


def _ensure_pgbench(dsn: str, database: str, scale: int) -> None:
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
    subprocess.run(
        ["pgbench", "-i", "-q", "-s", str(scale), f"{dsn} dbname={database}"],
        check=True,
        capture_output=True,
    )
    with _admin(dsn) as conn:
        size = conn.execute("SELECT pg_database_size(%s)", (database,)).fetchone()
    print(f"{database}: {size[0] / MIB if size else 0:.0f} MiB on disk", file=sys.stderr)


def _drop(dsn: str, database: str) -> None:
    with _admin(dsn) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def _fresh(dsn: str, database: str) -> None:
    _drop(dsn, database)
    with _admin(dsn) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(database))
        )


# -- measured steps --------------------------------------------------------------------------


def _timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall seconds and stdout of one command; exit on failure."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])}… failed: {err.decode()[-2000:]}")
    return seconds, out.decode()


def _peer_backup(dsn: str, database: str, tmp: Path, env: dict[str, str]) -> tuple[str, Any]:
    target = tmp / "peer.dump"
    seconds, _ = _timed(
        ["pg_dump", "-Fc", "--dbname", f"{dsn} dbname={database}", "-f", str(target)]
    )
    return "pg_dump -Fc to file", {"seconds": seconds, "bytes": target.stat().st_size}


def _our_backup(dsn: str, database: str, tmp: Path, env: dict[str, str]) -> tuple[str, Any]:
    wall, out = _timed([sys.executable, __file__, "--probe", "backup"], env)
    measured = json.loads(out)
    (tmp / "ours.id").write_text(measured.pop("id"))
    return "ours: backup to S3", {**measured, "process_wall": wall}


def _peer_restore(dsn: str, database: str, tmp: Path, env: dict[str, str]) -> tuple[str, Any]:
    target = f"{database}_peer_restore"
    _drop(dsn, target)
    # A restore into a new database includes creating it, as ours does.
    started = time.monotonic()
    _fresh(dsn, target)
    argv = ["pg_restore", "--no-owner", "--single-transaction", "--exit-on-error"]
    _timed([*argv, "--dbname", f"{dsn} dbname={target}", str(tmp / "peer.dump")])
    seconds = time.monotonic() - started
    _drop(dsn, target)
    return "pg_restore from file", {"seconds": seconds}


def _our_restore(dsn: str, database: str, tmp: Path, env: dict[str, str]) -> tuple[str, Any]:
    target = f"{database}_our_restore"
    _drop(dsn, target)
    backup_id = (tmp / "ours.id").read_text()
    probe_env = {**env, "BENCH_TARGET": target}
    wall, out = _timed(
        [sys.executable, __file__, "--probe", "restore", "--probe-arg", backup_id], probe_env
    )
    _drop(dsn, target)
    return "ours: restore from S3", {**json.loads(out), "process_wall": wall}


def _probe(kind: str, arg: str | None) -> None:
    """Child side: one backup or restore in-process; print seconds and our own peak RSS."""
    import resource

    import workers.engines.postgres.logical  # noqa: F401 - a worker has it loaded; start-up is shown apart
    from workers import engine
    from workers.context import Context
    from workers.settings import load_settings

    if os.environ.get("BENCH_PG_DUMP_COMPRESS"):
        from workers.engines.postgres import archives

        archives.PG_DUMP_COMPRESS = os.environ["BENCH_PG_DUMP_COMPRESS"]
    ctx = Context(load_settings(CONFIG))
    ctx.repo.index("postgres")
    started = time.monotonic()
    if kind == "backup":
        manifest = engine.backup(ctx, "postgres")
        dump = manifest.objects[0]
        facts = next(iter(manifest.details["databases"].values()))
        result: dict[str, Any] = {
            "id": manifest.id,
            "raw_bytes": dump.raw_size,
            "bytes": dump.size,
            "hash_seconds": facts["hash_seconds"],
        }
    else:
        restored = engine.restore(
            ctx, "postgres", arg or "latest", target_database=os.environ["BENCH_TARGET"]
        )
        one = restored.databases[0]
        assert restored.checksums_matched, one.mismatches
        result = {"pg_restore_seconds": one.seconds, "rows": one.rows}
    result["seconds"] = time.monotonic() - started
    result["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(result))


def _child_env(args: argparse.Namespace, endpoint: str, database: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "KOSMOS__STORAGE__URL": "s3://kosmos-bench/kosmos",
        "KOSMOS__STORAGE__ENDPOINT_URL": endpoint,
        "KOSMOS__STORAGE__REGION": "us-east-1",
        "KOSMOS__STORAGE__ACCESS_KEY_ID": "bench",
        "KOSMOS__STORAGE__SECRET_ACCESS_KEY": "bench",
        "KOSMOS__COMPONENTS__POSTGRES__DSN": f"{args.dsn} dbname=postgres",
        "KOSMOS__COMPONENTS__POSTGRES__DATABASES": f"[{database}]",
    }
    tuning = {
        "KOSMOS__COMPRESSION__THREADS": args.threads,
        "KOSMOS__COMPRESSION__LEVEL": args.level,
        "KOSMOS__STORAGE__PART_SIZE_MIB": args.part_size_mib,
        "KOSMOS__STORAGE__MAX_CONCURRENCY": args.concurrency,
    }
    env |= {key: value for key, value in tuning.items() if value is not None}
    if args.pg_dump_compress is not None:
        env["BENCH_PG_DUMP_COMPRESS"] = args.pg_dump_compress
    return env


def _make_bucket(endpoint: str) -> None:
    import boto3
    from botocore.config import Config

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(request_checksum_calculation="when_required"),
    ).create_bucket(Bucket="kosmos-bench")


# -- report ---------------------------------------------------------------------------------


def _median(items: list[dict[str, float]], key: str) -> float:
    return statistics.median(item[key] for item in items)


def _report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    print(f"\npgbench scale {args.scale}, {args.runs} runs, medians (all runs in brackets)")
    print("  (ours: timed in the child once its modules are loaded; its whole process apart)")
    for name, items in results.items():
        runs = ", ".join(f"{item['seconds']:.2f}" for item in items)
        line = f"  {name:<22} {_median(items, 'seconds'):7.2f} s  [{runs}]"
        if "peak_rss" in items[0]:
            line += f"  peak RSS {max(i['peak_rss'] for i in items) / MIB:.0f} MiB"
        if "process_wall" in items[0]:
            line += f"  (process incl. start-up {_median(items, 'process_wall'):.2f} s)"
        print(line)
    backup = results["ours: backup to S3"]
    restore = results["ours: restore from S3"]
    print(
        f"  our dump: {backup[0]['raw_bytes'] / MIB:.1f} MiB archive -> "
        f"{backup[0]['bytes'] / MIB:.1f} MiB stored; table hashing (concurrent) "
        f"{_median(backup, 'hash_seconds'):.2f} s"
    )
    print(
        f"  our restore: pg_restore phase {_median(restore, 'pg_restore_seconds'):.2f} s, "
        f"then re-hashing {restore[0]['rows']} rows"
    )
    _ratio("backup", _median(backup, "seconds"), _median(results["pg_dump -Fc to file"], "seconds"))
    peer_restore = _median(results["pg_restore from file"], "seconds")
    _ratio("restore", _median(restore, "seconds"), peer_restore)
    _ratio("restore, pg_restore phase", _median(restore, "pg_restore_seconds"), peer_restore)
    peak = max(item["peak_rss"] for item in backup + restore) / MIB
    verdict = "ok" if peak <= RSS_TARGET_MIB else "OVER"
    print(f"  peak RSS: {peak:.0f} MiB (target {RSS_TARGET_MIB} MiB): {verdict}")


def _ratio(what: str, ours: float, peer: float) -> None:
    ratio = ours / peer if peer else float("inf")
    verdict = "ok" if ratio <= TIME_TARGET else "OVER"
    print(f"  {what}: {ratio:.2f}x the peer (target {TIME_TARGET}x): {verdict}")


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
