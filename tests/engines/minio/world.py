"""A MinIO test world: a moto source, a moto backup store, a context with a hand-moved clock."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from workers.context import Context
from workers.core.config import Settings

COMPONENT = "minio"


class Clock:
    """A clock the test moves by hand, starting now (Object Lock dates must be future)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, **delta: float) -> datetime:
        """Move the clock forward."""
        self.now += timedelta(**delta)
        return self.now


@dataclass
class World:
    """Both endpoints and the context the engine runs in."""

    settings: Settings
    source: Any
    backup: Any
    backup_bucket: str
    source_url: str
    buckets: tuple[str, str]
    clock: Clock

    def context(self) -> Context:
        """A fresh context on the world's settings and clock."""
        return Context(self.settings, clock=self.clock)

    def put(self, key: str, data: bytes, bucket: int = 0) -> None:
        """Write an object at the source."""
        self.source.put_object(Bucket=self.buckets[bucket], Key=key, Body=data)

    def get(self, key: str, bucket: str) -> bytes:
        """Read an object at the source."""
        return bytes(self.source.get_object(Bucket=bucket, Key=key)["Body"].read())

    def keys(self, bucket: str) -> set[str]:
        """Every key of a source bucket."""
        pages = self.source.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    def blob_keys(self) -> list[str]:
        """Every blob key in the backup store."""
        pages = self.backup.get_paginator("list_objects_v2").paginate(
            Bucket=self.backup_bucket, Prefix=f"kosmos/{COMPONENT}/blobs/"
        )
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


class Recorder:
    """moto's request recorder on the source server: which requests the engine made."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, action: str) -> bytes:
        method = "GET" if action == "download-recording" else "POST"
        request = urllib.request.Request(
            f"{self.url}/moto-api/recorder/{action}", method=method, data=None
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return bytes(response.read())

    def start(self) -> None:
        """Forget what was recorded and record from now on."""
        self._call("reset-recording")
        self._call("start-recording")

    def object_gets(self) -> list[str]:
        """Paths of the GetObject requests recorded (listings and bucket calls excluded)."""
        self._call("stop-recording")
        found = []
        for line in self._call("download-recording").decode().splitlines():
            entry = json.loads(line)
            parts = urlparse(entry["url"])
            if entry["method"] == "GET" and parts.path.strip("/").count("/") >= 1:
                found.append(parts.path)
        return found
