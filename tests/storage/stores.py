"""Real stores for adapter tests: a LocalStore on a temp dir, an S3Store on the moto server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import s3_client
from workers.core.config import StorageSettings
from workers.storage.store_local import LocalStore
from workers.storage.store_s3 import S3Store

PREFIX = "kosmos"


def s3_settings(endpoint: str, bucket: str, **changes: Any) -> StorageSettings:
    """Storage settings for a moto bucket: 5 MiB parts, few retries so failures are quick."""
    values: dict[str, Any] = {
        "url": f"s3://{bucket}/{PREFIX}",
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "access_key_id": "test",
        "secret_access_key": "test",
        "part_size_mib": 5,
        "max_concurrency": 3,
        "max_attempts": 2,
        "connect_timeout": 2,
        "read_timeout": 20,
    }
    values.update(changes)
    return StorageSettings.model_validate(values)


def s3_store(endpoint: str, bucket: str, **changes: Any) -> S3Store:
    """An S3Store on ``bucket`` of the moto server at ``endpoint``."""
    return S3Store(s3_settings(endpoint, bucket, **changes))


def local_store(root: Path) -> LocalStore:
    """A LocalStore rooted at ``root``."""
    return LocalStore(root)


class Inspector:
    """Looks at a store from the outside (the bucket or the directory), as an operator would."""

    def __init__(self, store: LocalStore | S3Store) -> None:
        self.store = store
        self.client: Any = (
            s3_client(store.settings.endpoint_url or "") if isinstance(store, S3Store) else None
        )

    def raw_keys(self) -> list[str]:
        """Every key or file under the store, temp files included."""
        if isinstance(self.store, S3Store):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.store.bucket)
            return sorted(item["Key"] for page in pages for item in page.get("Contents", []))
        root = self.store.root
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def uploads(self) -> list[str]:
        """Keys of multipart uploads in progress (S3) or temp files (local)."""
        if isinstance(self.store, S3Store):
            reply = self.client.list_multipart_uploads(Bucket=self.store.bucket)
            return sorted(u["Key"] for u in reply.get("Uploads", []))
        return [k for k in self.raw_keys() if k.rsplit("/", 1)[-1].endswith(".part")]

    def flip_byte(self, key: str, offset: int) -> None:
        """Change one byte of a stored object in place, behind the store's back."""
        if isinstance(self.store, S3Store):
            full = f"{self.store.prefix}/{key}"
            body = bytearray(
                self.client.get_object(Bucket=self.store.bucket, Key=full)["Body"].read()
            )
            body[offset] ^= 0x01
            self.client.put_object(Bucket=self.store.bucket, Key=full, Body=bytes(body))
        else:
            path = self.store.root / key
            data = bytearray(path.read_bytes())
            data[offset] ^= 0x01
            path.write_bytes(bytes(data))

    def remove(self, key: str) -> None:
        """Delete one object behind the store's back."""
        if isinstance(self.store, S3Store):
            self.client.delete_object(Bucket=self.store.bucket, Key=f"{self.store.prefix}/{key}")
        else:
            (self.store.root / key).unlink()
