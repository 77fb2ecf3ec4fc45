"""Ack latency of the Slack app: signed ``/backup status`` requests against the bot in HTTP mode.

Seeds a local store with 10,000 backups (manifests, then one index rebuild per component),
starts ``kosmos-backup bot --http`` (gunicorn) against the fake Slack Web API, sends 500
signed requests at concurrency 20 and prints p50 / p99 (target: p99 < 100 ms)::

    python -m bench.ack_latency [--requests 500] [--concurrency 20] [--backups 10000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.fakes.slack import FakeSlack, signature_headers, slash_body
from tests.scenarios.bot_process import SECRET, BotProcess, bot_env
from workers.core.manifest import Manifest, ObjectEntry
from workers.settings import load_settings
from workers.storage.configured import open_repository
from workers.storage.repository import manifest_key

SHARE = {"postgres": 0.7, "etcd": 0.12, "minio": 0.06, "kubernetes": 0.06, "secrets": 0.06}
"""How the seeded backups spread over the example config's components."""


def seed(store: Path, total: int, env: dict[str, str]) -> dict[str, int]:
    """Write ``total`` committed backups' manifests and rebuild every index; return counts."""
    settings = load_settings(environ=env)
    repo = open_repository(settings)
    now = datetime.now(UTC)
    counts = {}
    for component, share in SHARE.items():
        count = round(total * share)
        counts[component] = count
        step = settings.component(component).frequency
        for number in range(count):
            finished = now - step * (count - number) + timedelta(minutes=5)
            manifest = Manifest(
                id=f"{component}-{finished:%Y%m%dT%H%MZ}-{number % 65536:04x}",
                component=component,
                kind=f"{component}-bench",
                started_at=finished - timedelta(minutes=3),
                finished_at=finished,
                objects=(ObjectEntry(name="data.zst", size=1_000_000 + number, sha256="0" * 64),),
            )
            key = manifest_key(component, manifest.id)
            repo.store.put_bytes(key, manifest.model_dump_json().encode())
        repo.rebuild_index(component)
    return counts


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered)))
    return ordered[rank - 1]


def run(
    requests: int,
    concurrency: int,
    backups: int,
    redis_url: str,
    keep: str | None,
    threads: int,
    workers: int,
) -> None:
    """Seed (unless ``keep`` names an already seeded folder), start the bot, measure, print."""
    fake = FakeSlack(usergroups={"platform": ["UVIEW"], "sre": []}).start()
    with tempfile.TemporaryDirectory(prefix="kb-bench-") as folder:
        base = Path(keep or folder)
        env = bot_env(fake.api_url, redis_url, base / "store")
        if (base / "store" / "_index").is_dir():
            print(f"reusing the seeded store in {base / 'store'}")
        else:
            started = time.monotonic()
            counts = seed(base / "store", backups, env)
            took = time.monotonic() - started
            print(f"seeded {sum(counts.values())} backups {counts} in {took:.1f}s")
        log = Path(folder) / "bot.log"
        bot = BotProcess(env, log, threads=threads, metrics=True, workers=workers).start()
        try:
            measure(bot.url, requests, concurrency)
            inside(bot)
        finally:
            bot.stop()
            fake.stop()


def measure(url: str, requests: int, concurrency: int) -> None:
    """Send the signed requests (one keep-alive connection per client) and print latencies."""
    target = urllib.parse.urlsplit(url)
    local = threading.local()

    def one(_: int) -> tuple[int, float, bool]:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(
                target.hostname or "127.0.0.1", target.port, timeout=10
            )
        body = slash_body("status", user="UVIEW")
        headers = signature_headers(SECRET, body)
        started = time.monotonic()
        local.conn.request("POST", target.path, body=body, headers=headers)
        response = local.conn.getresponse()
        raw = response.read()
        seconds = time.monotonic() - started
        board = json.loads(raw).get("blocks", [{}])[0].get("text", {}).get("text", "")
        return response.status, seconds, board.startswith("Backups · RPO")

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency * 2)))  # warm-up: connections, group cache
        started = time.monotonic()
        results = list(pool.map(one, range(requests)))
        wall = time.monotonic() - started
    failures = [r for r in results if r[0] != 200 or not r[2]]
    seconds = [r[1] * 1000 for r in results]
    print(
        f"{requests} signed /backup status at concurrency {concurrency}: "
        f"p50 {percentile(seconds, 0.50):.1f} ms, p99 {percentile(seconds, 0.99):.1f} ms, "
        f"max {max(seconds):.1f} ms, mean {statistics.fmean(seconds):.1f} ms, "
        f"{requests / wall:.0f} req/s, {len(failures)} failed"
    )
    verdict = "meets" if percentile(seconds, 0.99) < 100 else "misses"
    print(f"target p99 < 100 ms: {verdict}")


def inside(bot: BotProcess) -> None:
    """The bot's own view: its ack-time histogram, from arrival in the app to the ack."""
    url = f"http://127.0.0.1:{bot.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        lines = answer.read().decode().splitlines()
    buckets = []
    for line in lines:
        if line.startswith("kosmos_bot_ack_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0
    shares = ", ".join(f"≤{bound * 1000:g} ms {count / total:.1%}" for bound, count in buckets[:6])
    print(f"inside the app (all {total:.0f} acks): {shares}")


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--backups", type=int, default=10_000)
    db = os.environ.get("KOSMOS_TEST_REDIS_DB", "15")
    parser.add_argument("--redis-url", default=f"redis://127.0.0.1:6379/{db}")
    parser.add_argument("--keep", help="a folder to seed once and reuse on later runs")
    parser.add_argument("--threads", type=int, default=16, help="the bot's threads per process")
    parser.add_argument("--workers", type=int, default=2, help="the bot's HTTP processes")
    args = parser.parse_args()
    run(
        args.requests,
        args.concurrency,
        args.backups,
        args.redis_url,
        args.keep,
        args.threads,
        args.workers,
    )


if __name__ == "__main__":
    main()
