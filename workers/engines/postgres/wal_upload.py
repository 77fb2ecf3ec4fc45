"""WAL files straight into barman-cloud's layout: one client, a conditional PUT, no subprocess.

barman-cloud-wal-archive cost a Python start, two boto3 clients and a LIST per segment.
Here one process keeps one client and writes ``wals/<timeline+log>/<name>.zst`` (what
``barman-cloud-wal-archive --zstd`` writes, so barman's restore and our checks read it)
with ``If-None-Match: *`` where ``storage.conditional_writes`` says the store honours it: the
store itself refuses an overwrite, and only then is the archived copy fetched back and
compared. Elsewhere (Alibaba OSS, older MinIO: the header may be ignored, and an ignored one
would let a second server overwrite a segment silently) one HEAD comes first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zstandard
from botocore.exceptions import ClientError

from workers.core.config import Settings
from workers.core.errors import IntegrityError, UsageError
from workers.engines.postgres import barman_cloud, wal_archive
from workers.storage.store_s3 import storage_errors

WAL_LEVEL = 3
"""zstd level of archived WAL (barman's default for --zstd, so sizes compare)."""


class WalUploader:
    """Pushes WAL files of one component; safe to share between threads."""

    def __init__(self, settings: Settings, component: str, *, quick: bool = True) -> None:
        self.target = barman_cloud.target_for(settings, component, quick=quick)
        self.archive = barman_cloud.wal_archive(settings, self.target)
        self.client: Any = self.archive.client
        self.conditional = settings.storage.conditional_writes

    def key(self, name: str) -> str:
        """The object key barman-cloud uses for ``name`` compressed with zstd."""
        folder = wal_archive.hash_dir(name)
        return f"{self.archive.wals}{folder + '/' if folder else ''}{name}.zst"

    def push(self, wal_path: str) -> bool:
        """Store one WAL file; True if written now, False if an identical copy was there.

        IntegrityError when a different file of that name is archived: never overwritten.
        """
        name = Path(wal_path).name
        if not wal_archive.is_wal_name(name):
            raise UsageError(f"{name!r} is not a WAL file name", hint="archive_command passes %p")
        data = Path(wal_path).read_bytes()
        if self.conditional or not self._exists(name):
            body = zstandard.ZstdCompressor(level=WAL_LEVEL, write_checksum=True).compress(data)
            condition = {"IfNoneMatch": "*"} if self.conditional else {}
            try:
                with storage_errors("archive WAL", self.archive.describe()):
                    try:
                        self.client.put_object(
                            Bucket=self.archive.bucket, Key=self.key(name), Body=body, **condition
                        )
                        return True
                    except ClientError as exc:
                        if exc.response.get("Error", {}).get("Code") not in _EXISTS:
                            raise
            finally:
                del body
        if self.stored(name) != data:
            raise IntegrityError(
                f"WAL file {name} is already archived with different content; not overwriting",
                hint=f"two servers archiving to {self.target.describe()}? "
                "give each its own components.<name>.server_name",
            )
        return False

    def _exists(self, name: str) -> bool:
        """Whether ``name`` is archived already (one HEAD)."""
        with storage_errors("look up WAL", self.archive.describe()):
            try:
                self.client.head_object(Bucket=self.archive.bucket, Key=self.key(name))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
        return True

    def stored(self, name: str) -> bytes:
        """The archived content of ``name`` (decompressed)."""
        with storage_errors("read back WAL", self.archive.describe()):
            reply = self.client.get_object(Bucket=self.archive.bucket, Key=self.key(name))
            packed = reply["Body"].read()
        return zstandard.ZstdDecompressor().decompressobj().decompress(packed)


_EXISTS = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
