"""An etcd snapshot into S3: ours against ``etcdctl snapshot save`` plus ``aws s3 cp``.

Starts an etcd on loopback and fills it with ``--keys`` keys (100k of ~1.3 KB values is about
138 MB of database), then runs, in alternating order and ``--runs`` times (median reported):

- the peer: ``etcdctl snapshot save`` into a local file, then ``aws s3 cp`` of that file to a
  moto S3 server;
- ours: the etcd engine's backup (snapshot save, snapshot status, key sample, zstd, sha256,
  multipart upload, manifest) in a child process, whose peak RSS is measured.

Targets: ours <= 1.1 x the peer's wall time, our peak RSS <= 150 MiB::

    python3 bench/etcd_snapshot.py [--keys 100000] [--runs 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: python3 bench/etcd_snapshot.py
    sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from tests.engines.etcd.etcd_server import EtcdServer  # noqa: E402
from tests.services import moto_server  # noqa: E402

CONFIG = ROOT / "examples" / "kosmos-backup.yaml"
TIME_TARGET = 1.1
RSS_TARGET_MIB = 150
BUCKET = "kosmos-bench"
VALUE_BYTES = 650
"""Random bytes per value, hex-encoded: 1.3 KB a key, as Kubernetes objects are."""
BATCH = 500
MIB = 1 << 20


def main() -> None:
    """Parse options and run the benchmark (or, with --probe, our one measured backup)."""
    args = _parser().parse_args()
    if args.probe:
        _probe()
        return
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="kosmos-bench-etcd-") as tmp, moto_server() as s3:
        root = Path(tmp)
        (root / "etcd").mkdir()
        etcd = EtcdServer(root / "etcd").start()
        try:
            _fill(etcd, args.keys)
            _client(s3.url).create_bucket(Bucket=BUCKET)
            env = _child_env(args, s3.url, etcd.url)
            for run in range(args.runs):
                steps = [_peer, _ours] if run % 2 == 0 else [_ours, _peer]
                for step in steps:
                    name, measured = step(root, etcd, env)
                    results.setdefault(name, []).append(measured)
                print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
        finally:
            etcd.stop()
    _report(results, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=100_000, help="keys to put (100k: ~138 MB)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--threads", default="2", help="compression.threads for ours")
    parser.add_argument("--level", default="3", help="compression.level for ours")
    parser.add_argument("--part-size-mib", default="16", help="storage.part_size_mib")
    parser.add_argument("--concurrency", default="4", help="storage.max_concurrency")
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    return parser


def _fill(etcd: EtcdServer, keys: int) -> None:
    started = time.monotonic()
    for start in range(0, keys, BATCH):
        etcd.put_many(
            (f"/registry/bench/k{i:07d}", os.urandom(VALUE_BYTES).hex())
            for i in range(start, min(start + BATCH, keys))
        )
    status = json.loads(etcd.ctl("endpoint", "status", "-w", "json"))[0]["Status"]
    print(
        f"etcd: {keys:,} keys, {status['dbSize'] / MIB:.0f} MiB database"
        f" ({time.monotonic() - started:.0f}s to fill)",
        file=sys.stderr,
    )


def _client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def _child_env(args: argparse.Namespace, s3_url: str, etcd_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "BENCH_S3": s3_url,
        "KOSMOS__STORAGE__URL": f"s3://{BUCKET}/ours",
        "KOSMOS__STORAGE__ENDPOINT_URL": s3_url,
        "KOSMOS__STORAGE__REGION": "us-east-1",
        "KOSMOS__STORAGE__ACCESS_KEY_ID": "test",
        "KOSMOS__STORAGE__SECRET_ACCESS_KEY": "test",
        "KOSMOS__STORAGE__PART_SIZE_MIB": args.part_size_mib,
        "KOSMOS__STORAGE__MAX_CONCURRENCY": args.concurrency,
        "KOSMOS__COMPRESSION__THREADS": args.threads,
        "KOSMOS__COMPRESSION__LEVEL": args.level,
        "KOSMOS__COMPONENTS__ETCD__ENDPOINTS": f"[{etcd_url}]",
    }


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds and stdout of one command; exit on failure."""
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])}… failed: {done.stderr[-2000:]}")
    return time.monotonic() - started, done.stdout


def _peer(root: Path, etcd: EtcdServer, env: dict[str, str]) -> tuple[str, dict[str, float]]:
    path = root / "peer.db"
    path.unlink(missing_ok=True)
    save, _ = _timed(["etcdctl", f"--endpoints={etcd.url}", "snapshot", "save", str(path)], env)
    copy, _ = _timed(
        ["aws", "--endpoint-url", env["BENCH_S3"], "s3", "cp", str(path), f"s3://{BUCKET}/peer/"],
        env,
    )
    size = path.stat().st_size
    path.unlink()
    measured = {"seconds": save + copy, "save": save, "upload": copy, "bytes": size}
    return "etcdctl snapshot save + aws s3 cp", measured


def _ours(root: Path, etcd: EtcdServer, env: dict[str, str]) -> tuple[str, dict[str, float]]:
    wall, out = _timed([sys.executable, __file__, "--probe"], env)
    measured = json.loads(out)
    return "ours: backup to S3", {**measured, "seconds": wall}


def _probe() -> None:
    """One backup in this process; print what it took and this process's peak RSS."""
    from workers.config_loader import parse_settings
    from workers.context import Context
    from workers.engines.etcd import backup

    settings = parse_settings(CONFIG.read_text(), os.environ, origin=str(CONFIG))
    started = time.monotonic()
    manifest = backup.backup(Context(settings), "etcd")
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "in_process": time.monotonic() - started,
                "bytes": manifest.total_size,
                "raw_bytes": sum(o.raw_size or 0 for o in manifest.objects),
                "rss_mib": rss_kib / 1024,
            }
        )
    )


def _report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    medians = {
        name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        for name, runs in results.items()
    }
    for name, values in medians.items():
        shown = ", ".join(f"{k} {v:,.2f}" for k, v in values.items())
        print(f"{name}: {shown}")
    peer = medians["etcdctl snapshot save + aws s3 cp"]["seconds"]
    ours = medians["ours: backup to S3"]
    ratio = ours["seconds"] / peer
    rss = max(run["rss_mib"] for run in results["ours: backup to S3"])
    print(
        f"\n{args.keys:,} keys, median of {args.runs}: ours {ours['seconds']:.2f}s vs peer "
        f"{peer:.2f}s = {ratio:.2f}x (target <= {TIME_TARGET}x); our peak RSS {rss:.0f} MiB "
        f"(target <= {RSS_TARGET_MIB} MiB)"
    )


if __name__ == "__main__":
    main()
