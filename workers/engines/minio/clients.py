"""boto3 clients for the MinIO engine: the source endpoint and the backup store's bucket."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any

from workers.core.config import MinioComponent, StorageSettings


def new_session() -> Any:
    """A boto3 session whose clients share one loaded service model and parse fast.

    Each session loads botocore's S3 model from JSON (a tenth of a second or more): one
    session per run, for its source and store clients alike.
    """
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    # botocore parses every LastModified of a listing with dateutil: 0.4 ms each, most of
    # an unchanged run's time over 10,000 objects. ISO 8601 is what listings carry.
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp)
    return boto3.session.Session(botocore_session=core)


def source_client(
    settings: MinioComponent,
    endpoint_url: str | None = None,
    *,
    probe: bool = False,
    session: Any = None,
) -> Any:
    """A client for the component's endpoint (or ``endpoint_url`` with its credentials).

    A ``probe`` client answers within seconds: status must not hang on a dead endpoint.
    """
    return s3_client(
        endpoint_url or settings.endpoint_url,
        region=settings.region,
        keys=(_secret(settings.access_key_id), _secret(settings.secret_access_key)),
        checksums=settings.checksums,
        addressing_style=settings.addressing_style,
        pool=settings.workers * 2 + 2,
        attempts=1 if probe else 5,
        timeouts=(2, 5) if probe else (10, 60),
        session=session,
    )


def store_client(storage: StorageSettings, workers: int, session: Any = None) -> Any:
    """A client for the backup store's bucket, pooled for ``workers`` threads."""
    return s3_client(
        storage.endpoint_url,
        region=storage.region,
        keys=(_secret(storage.access_key_id), _secret(storage.secret_access_key)),
        checksums=storage.checksums,
        addressing_style=storage.addressing_style,
        pool=workers * 2 + 2,
        attempts=storage.max_attempts,
        timeouts=(storage.connect_timeout.total_seconds(), storage.read_timeout.total_seconds()),
        session=session,
    )


def s3_client(
    endpoint_url: str | None,
    *,
    region: str | None,
    keys: tuple[str | None, str | None],
    checksums: str,
    addressing_style: str,
    pool: int,
    attempts: int,
    timeouts: tuple[float, float],
    session: Any = None,
) -> Any:
    """A boto3 S3 client for S3-compatible stores (on ``session``, else a new one)."""
    from botocore.config import Config

    boto = session if session is not None else new_session()
    config = Config(
        request_checksum_calculation=checksums,
        response_checksum_validation=checksums,
        s3={"addressing_style": addressing_style},
        retries={"max_attempts": attempts, "mode": "standard"},
        connect_timeout=timeouts[0],
        read_timeout=timeouts[1],
        max_pool_connections=pool,
    )
    client = boto.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=keys[0],
        aws_secret_access_key=keys[1],
        config=config,
    )
    client.meta.events.register("before-sign.s3.DeleteObjects", _content_md5)
    return client


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        from botocore.utils import parse_timestamp

        return parse_timestamp(value)
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _content_md5(request: Any, **_: Any) -> None:
    # botocore >= 1.36 sends a CRC32 instead of Content-MD5 on DeleteObjects; OSS and older
    # MinIO refuse the batch delete without Content-MD5 (MissingContentMD5).
    body = request.body
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, bytes) and "Content-MD5" not in request.headers:
        digest = hashlib.md5(body, usedforsecurity=False).digest()
        request.headers["Content-MD5"] = base64.b64encode(digest).decode()


def _secret(value: Any) -> str | None:
    return (value.get_secret_value() or None) if value is not None else None
