"""Choosing a backup by ref: ``latest`` (the newest good one), an id, or a unique id prefix."""

from __future__ import annotations

from workers.core.catalog import find_backup, missing_backup
from workers.core.errors import NotFoundError
from workers.core.manifest import Manifest
from workers.storage.repository import Repository


def resolve(repo: Repository, component: str, ref: str) -> Manifest:
    """The manifest ``ref`` names among ``component``'s backups; NotFoundError if none."""
    found = find_backup(repo.index(component), ref)
    if found is None:
        raise NotFoundError(missing_backup(component, ref), see=("list", component))
    return repo.manifest(found.id)
