"""Whether the MinIO source answers: the status board's probe."""

from __future__ import annotations

from workers.context import Context
from workers.core.errors import KosmosError
from workers.engines.minio.clients import source_client
from workers.engines.minio.mirror import settings_of
from workers.storage.store_s3 import storage_errors


def unreachable(ctx: Context, component: str) -> str | None:
    """Why the source endpoint cannot be listed right now (no credentials shown), or None."""
    settings = settings_of(ctx, component)
    client = source_client(settings, probe=True)
    try:
        with storage_errors("list buckets", settings.endpoint_url):
            client.list_buckets()
    except KosmosError as exc:
        return exc.message
    return None
