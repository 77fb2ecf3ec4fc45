"""Where a backup's pieces live in the store: ``<component>/<backup-id>/…`` and the indexes."""

from __future__ import annotations

from workers.core.manifest import MANIFEST_NAME, Manifest

INDEX_PREFIX = "_index"


def backup_prefix(component: str, backup_id: str) -> str:
    """``<component>/<backup-id>/``."""
    return f"{component}/{backup_id}/"


def manifest_key(component: str, backup_id: str) -> str:
    """Where a backup's manifest lives."""
    return f"{component}/{backup_id}/{MANIFEST_NAME}"


def object_key(manifest: Manifest, name: str) -> str:
    """Where one object of a backup lives."""
    return f"{manifest.component}/{manifest.id}/{name}"


def index_key(component: str) -> str:
    """Where a component's index lives."""
    return f"{INDEX_PREFIX}/{component}.json"
