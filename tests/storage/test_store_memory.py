"""A 256 MiB generated stream uploads through the repository with the peak RSS under 200 MiB."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import s3_client
from tests.services import MotoServer

STREAM_MIB = 256
RSS_LIMIT_MIB = 200

# Runs in a fresh interpreter, and there in a forked process: Linux carries a process's
# peak RSS over exec, so an exec'd child's ru_maxrss starts at the pytest parent's peak
# (measured: 515 MiB for a child that never used 14). A fork starts a new count.
CHILD = """
import os, sys
if os.fork():
    sys.exit(os.waitstatus_to_exitcode(os.wait()[1]))

import json, random, re, resource, time
from workers.storage.repository import PipelineOptions, Repository
from workers.storage.store_s3 import S3Store
from workers.core.config import StorageSettings

endpoint, bucket, mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings = StorageSettings(
    url=f"s3://{bucket}/kosmos", endpoint_url=endpoint, region="us-east-1",
    access_key_id="test", secret_access_key="test",
)  # the shipped defaults: 16 MiB parts, 4 in flight
repo = Repository(S3Store(settings), PipelineOptions(compression_level=1, compression_threads=2))
rng = random.Random(7)

def source():
    for _ in range(mib):
        yield rng.randbytes(1 << 20)  # incompressible: the worst case for part buffers

started = time.monotonic()
with repo.begin("postgres", "postgres-logical") as writer:
    entry = writer.write("dump.pgc", source())
    manifest = writer.commit()
hwm_kib = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1])
print(json.dumps({
    "seconds": round(time.monotonic() - started, 2),
    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    "vm_hwm_mib": round(hwm_kib / 1024, 1),
    "raw_size": entry.raw_size,
    "stored_size": entry.size,
    "id": manifest.id,
}))
"""


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[MotoServer]:
    """A moto server of its own: it holds the 256 MiB, and stopping it frees that memory."""
    server = MotoServer(log_dir=tmp_path).start()
    yield server
    server.stop()


def test_256_mib_upload_keeps_peak_rss_under_200_mib(own_s3: MotoServer) -> None:
    client = s3_client(own_s3.url)
    client.create_bucket(Bucket="memory")
    result = subprocess.run(
        [sys.executable, "-c", CHILD, own_s3.url, "memory", str(STREAM_MIB)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"\nupload of {STREAM_MIB} MiB: {report}")
    assert report["raw_size"] == STREAM_MIB << 20
    assert report["stored_size"] >= STREAM_MIB << 20  # random data does not compress
    assert report["peak_rss_mib"] < RSS_LIMIT_MIB
    assert report["vm_hwm_mib"] < RSS_LIMIT_MIB  # the same peak, as the kernel's mm sees it
    stored = client.head_object(Bucket="memory", Key=f"kosmos/postgres/{report['id']}/dump.pgc.zst")
    assert stored["ContentLength"] == report["stored_size"]
