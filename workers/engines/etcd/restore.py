"""Restoring a snapshot: download and check, then a NEW data dir, a K3s reset, or a scratch."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from workers.context import Context
from workers.core.catalog import find_backup, missing_backup
from workers.core.errors import IntegrityError, NotFoundError, UsageError
from workers.core.manifest import Manifest
from workers.core.model import Model
from workers.core.ports import Progress, no_progress
from workers.engines.etcd import etcdctl, k3s, scratch
from workers.engines.etcd.backup import KIND, download, facts_of, identities, settings_of
from workers.engines.etcd.options import EtcdRestoreOptions
from workers.engines.etcd.snapshot import SnapshotFacts


class EtcdRestoreResult(Model):
    """What a restore did, for the chat and the runbook's later steps."""

    backup_id: str
    revision: int
    snapshot: str
    checksums_matched: bool
    data_dir: str | None = None
    restored_keys: int | None = None
    commands: list[str] = Field(default_factory=list, description="the K3s reset, in order")
    ran: list[str] = Field(default_factory=list, description="the commands run on this node")
    duration_seconds: float


def choose(ctx: Context, component: str, ref: str) -> Manifest:
    """The snapshot backup named by ``ref`` (``latest``: the newest good one)."""
    found = find_backup(ctx.repo.index(component), ref)
    if found is None or found.kind != KIND:
        raise NotFoundError(missing_backup(component, ref), see=("list", component))
    return ctx.repo.manifest(found.id)


def restore(
    ctx: Context,
    component: str,
    ref: str = "latest",
    *,
    progress: Progress = no_progress,
    **options: Any,
) -> EtcdRestoreResult:
    """Download the snapshot, check it, and put it where ``options`` say."""
    chosen = EtcdRestoreOptions.parse(options)
    settings = settings_of(ctx, component)
    started = time.monotonic()
    manifest = choose(ctx, component, ref)
    facts = facts_of(manifest)
    target = _snapshot_path(chosen, settings.snapshot_dir, manifest.id)
    if target.exists():
        raise UsageError(f"{target} already exists", hint="name another snapshot_path")
    progress("download", note=str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    download(ctx.repo, manifest, identities(ctx.settings), target)
    status = etcdctl.status(target, target.name)
    if status.hash != facts.status.hash or status.revision != facts.status.revision:
        raise IntegrityError(
            f"snapshot {manifest.id} reads back as revision {status.revision}, hash "
            f"{status.hash}; the backup recorded {facts.status.revision}, {facts.status.hash}"
        )
    result: dict[str, Any] = {
        "backup_id": manifest.id,
        "revision": status.revision,
        "snapshot": str(target),
        "checksums_matched": True,
        "commands": [k3s.shown(argv) for argv in k3s.reset_commands(str(target))],
    }
    if chosen.data_dir is not None:
        progress("snapshot restore", note=chosen.data_dir)
        etcdctl.restore(
            target, Path(chosen.data_dir), member=chosen.member, peer_url=chosen.peer_url
        )
        result["data_dir"] = chosen.data_dir
    elif chosen.scratch:
        result |= _drill(target, facts_of(manifest), progress)
    elif chosen.k3s_reset:
        result["ran"] = k3s.reset(str(target), progress)
    return EtcdRestoreResult(**result, duration_seconds=round(time.monotonic() - started, 3))


def _drill(target: Path, facts: SnapshotFacts, progress: Progress) -> dict[str, Any]:
    progress("restore into a scratch etcd")
    with scratch.serving(target, target.parent) as server:
        if facts.keys is None:
            return {"restored_keys": None}
        count, problems = scratch.compare_with(server, facts.keys)
    shutil.rmtree(target.parent, ignore_errors=True)  # a drill keeps nothing on the node
    if problems:
        raise IntegrityError(
            "the restored etcd does not match the backup: " + "; ".join(problems[:3]),
            hint="the backup or the restore is damaged; try an older backup",
        )
    return {"restored_keys": count}


def _snapshot_path(chosen: EtcdRestoreOptions, snapshot_dir: str, backup_id: str) -> Path:
    if chosen.snapshot_path:
        return Path(chosen.snapshot_path)
    if chosen.data_dir:
        # Beside the new data dir: never inside it (etcdctl wants it new and empty).
        data_dir = Path(chosen.data_dir)
        return data_dir.with_name(f"{data_dir.name}.{backup_id}.db")
    if chosen.scratch:
        return Path(tempfile.mkdtemp(prefix="kosmos-etcd-drill-")) / f"{backup_id}.db"
    return Path(snapshot_dir) / f"kosmos-restore-{backup_id}.db"
