"""The background archiver's process: settings, one uploader, and the freshness facts."""

from __future__ import annotations

from pathlib import Path

from workers.core.config import Settings
from workers.engines.postgres import barman_cloud, wal_async, wal_shipping
from workers.engines.postgres.wal_upload import WalUploader


def run(settings: Settings, pg_wal: Path, component: str | None = None) -> None:
    """Serve ``pg_wal`` until it is idle (see wal_async); one client for every segment."""
    component = component or barman_cloud.default_component(settings)
    uploader = WalUploader(settings, component)

    def stored(name: str, path: str) -> None:
        if wal_shipping.wal_archive.is_segment(name):
            wal_shipping.record_freshness(settings, component, name, path)

    wal_async.serve(uploader, pg_wal, on_stored=stored)
