"""A barman-cloud base backup into a new data directory: its tar objects streamed into tar.

barman-cloud-restore spent most of its time starting Python and extracting its tar in
Python, one small file at a time (2.7 s for a 25 MB cluster; the GET alone took 0.04 s).
Here the worker's own client streams each object into GNU tar. Only the plain layout takes
this path: ``data.tar`` (and its ``data_NNNN.tar`` parts), uncompressed or gzip, no
tablespaces, no snapshots. Anything else is barman-cloud-restore's, as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workers import process
from workers.core.config import Settings
from workers.engines.postgres import barman_cloud
from workers.engines.postgres.barman_cloud import BarmanTarget
from workers.storage.store_s3 import make_s3_client, storage_errors

RESTORE_TIMEOUT = 4 * 3600.0
CHUNK = 1 << 20
_PART = re.compile(r"data(?:_(\d{4}))?\.tar(\.gz)?")
_PLAIN = {"tablespaces": "None", "snapshots_info": "None"}
"""backup.info lines the plain layout has (a missing snapshots_info: an older barman)."""


def restore(settings: Settings, target: BarmanTarget, backup_id: str, data_dir: str) -> None:
    """Extract base backup ``backup_id`` into ``data_dir`` (new or empty)."""
    client = make_s3_client(settings.storage)
    bucket = settings.storage.bucket
    prefix = f"{target.key_prefix}/{target.server_name}/base/{backup_id}/".lstrip("/")
    parts = _plain_parts(client, bucket, prefix, target)
    if parts is None:
        barman_cloud.run(
            target,
            "barman-cloud-restore",
            [],
            positional=[backup_id, data_dir],
            timeout=RESTORE_TIMEOUT,
        )
        return
    Path(data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    for key in parts:
        gzip = ["-z"] if key.endswith(".gz") else []
        argv = ["tar", "-x", *gzip, "-f", "-", "-C", data_dir]
        process.stream_in(argv, _chunks(client, bucket, key, target))
    (Path(data_dir) / "pg_wal").mkdir(exist_ok=True)


def _plain_parts(client: Any, bucket: str, prefix: str, target: BarmanTarget) -> list[str] | None:
    """The data tar keys in order, or None when the backup is not of the plain layout."""
    with storage_errors("list base backup", target.describe()):
        reply = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        if reply.get("IsTruncated"):
            return None
        names = [str(item["Key"])[len(prefix) :] for item in reply.get("Contents", [])]
        if "backup.info" not in names:
            return None
        info = client.get_object(Bucket=bucket, Key=prefix + "backup.info")["Body"].read()
    fields = dict(
        line.split("=", 1) for line in info.decode(errors="replace").splitlines() if "=" in line
    )
    if any(fields.get(k, v) != v for k, v in _PLAIN.items()):
        return None
    parts: list[tuple[int, str]] = []
    for name in names:
        if name == "backup.info":
            continue
        match = _PART.fullmatch(name)
        if match is None:
            return None
        parts.append((int(match.group(1) or 0), prefix + name))
    return [key for _, key in sorted(parts)] or None


def _chunks(client: Any, bucket: str, key: str, target: BarmanTarget) -> Iterator[bytes]:
    with storage_errors("download base backup", target.describe()):
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        yield from body.iter_chunks(CHUNK)
