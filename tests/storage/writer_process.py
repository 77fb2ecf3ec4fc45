"""A backup writer in its own process, for tests that kill it mid-upload.

Run as ``python -m tests.storage.writer_process --store s3 --endpoint URL --bucket B`` (or
``--store local --root DIR``). It writes a small object, prints ``{"id": …}``, then streams a
large generated object slowly, and prints ``{"committed": …, "max_rss_kib": …}`` if it lives.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Iterator

from tests.storage.stores import local_store, s3_store
from workers.storage.repository import PipelineOptions, Repository

MIB = 1 << 20


def slow_source(total_mib: int, delay: float) -> Iterator[bytes]:
    """``total_mib`` MiB of random bytes, one MiB at a time, pausing ``delay`` s after each."""
    for _ in range(total_mib):
        yield os.urandom(MIB)
        if delay:
            time.sleep(delay)


def main(argv: list[str]) -> None:
    """Write one backup as the arguments say."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["s3", "local"], required=True)
    parser.add_argument("--endpoint")
    parser.add_argument("--bucket")
    parser.add_argument("--root")
    parser.add_argument("--component", default="postgres")
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--compress", action="store_true")
    args = parser.parse_args(argv)
    store = s3_store(args.endpoint, args.bucket) if args.store == "s3" else local_store(args.root)
    repo = Repository(store, PipelineOptions(compression_level=1, compression_threads=2))
    with repo.begin(args.component, "test") as writer:
        writer.write("meta.json", [b'{"written": "first"}'], compress=False)
        print(json.dumps({"id": writer.id}), flush=True)
        writer.write("data.bin", slow_source(args.size_mib, args.delay), compress=args.compress)
        manifest = writer.commit(source={"generator": "os.urandom"})
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"committed": manifest.id, "max_rss_kib": rss}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
