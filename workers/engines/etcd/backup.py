"""Taking a snapshot (etcdctl, or k3s on a K3s server) into the repository; retention."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from workers.context import Context
from workers.core.config import EtcdComponent, Settings
from workers.core.errors import EngineError, NotFoundError
from workers.core.manifest import Manifest
from workers.core.ports import Progress, no_progress
from workers.core.retention import Deletion
from workers.engines.etcd import etcdctl, k3s
from workers.engines.etcd.snapshot import SnapshotFacts
from workers.storage import expiry
from workers.storage.repository import Repository

KIND = "etcd-snapshot"
OBJECT = "snapshot.db"


def settings_of(ctx: Context, component: str) -> EtcdComponent:
    """The component's settings, which must be of kind etcd."""
    settings = ctx.settings.component(component)
    if not isinstance(settings, EtcdComponent):
        raise EngineError(f"component {component} is {settings.kind}, not etcd")
    return settings


def backup(
    ctx: Context, component: str, *, base: bool = False, progress: Progress = no_progress
) -> Manifest:
    """Snapshot etcd, check the file, stream it into the repository; commit its manifest."""
    settings = settings_of(ctx, component)
    client = etcdctl.Client.of(settings)
    progress("reach etcd")
    # Reached first: an etcd that is down fails here, before anything is written.
    endpoint, server = client.reachable()
    with (
        tempfile.TemporaryDirectory(prefix="kosmos-etcd-") as tmp,
        ctx.repo.begin(component, KIND) as writer,
    ):
        progress("snapshot save", note=endpoint)
        if k3s.present():
            path, method = k3s.save(f"kosmos-{writer.id}", settings.snapshot_dir), "k3s"
        else:
            path, method = Path(tmp) / OBJECT, "etcdctl"
            client.save(endpoint, path)
        # The file's own checks and the key sample run beside the upload, not before it: the
        # manifest, written last, waits for them, and a damaged file aborts the backup.
        with ThreadPoolExecutor(2, thread_name_prefix="etcd-side") as side:
            checked = side.submit(_facts, client, endpoint, path, method)
            version = side.submit(etcdctl.version)
            writer.write(
                OBJECT, _reported(etcdctl.file_chunks(path), path.stat().st_size, progress)
            )
            facts = checked.result()
            return writer.commit(
                source={
                    "endpoint": endpoint,
                    "cluster_id": str(server.get("header", {}).get("cluster_id", "")),
                    "member_id": str(server.get("header", {}).get("member_id", "")),
                    "db_size": int(server.get("dbSize", 0)),
                },
                details=facts.model_dump(mode="json"),
                tool_versions={"etcdctl": version.result(), "server": str(server.get("version"))},
            )


def _facts(client: etcdctl.Client, endpoint: str, path: Path, method: str) -> SnapshotFacts:
    """The snapshot's status (its trailer checked first) and the live keys at its revision."""
    status = etcdctl.status(path, path.name)
    return SnapshotFacts(
        method=method, status=status, keys=client.key_facts(endpoint, status.revision)
    )


def _reported(chunks: Iterable[bytes], total: int, progress: Progress) -> Iterator[bytes]:
    done = 0
    for chunk in chunks:
        done += len(chunk)
        progress("upload", done_bytes=done, total_bytes=total)
        yield chunk


def facts_of(manifest: Manifest) -> SnapshotFacts:
    """What the manifest recorded of its snapshot."""
    try:
        return SnapshotFacts.model_validate(manifest.details)
    except ValueError:
        raise NotFoundError(f"{manifest.id} is not an etcd snapshot backup") from None


def download(repo: Repository, manifest: Manifest, keys: list[str], path: Path) -> Path:
    """The snapshot back as a file, its sha256 checked before it gets its name."""
    partial = path.with_name(path.name + ".part")
    entry = next(e for e in manifest.objects if e.name.startswith(OBJECT))
    with partial.open("wb") as out:
        for chunk in repo.open_object(manifest, entry.name, keys):
            out.write(chunk)
    # open_object confirms the sha256 only when its stream ends: renamed after, never before.
    partial.replace(path)
    return path


def identities(settings: Settings) -> list[str]:
    """age identities for encrypted snapshots, from ``encryption.identity_file``."""
    path = settings.encryption.identity_file
    if not path:
        return []
    lines = Path(path).read_text().splitlines()
    return [line.strip() for line in lines if line.strip().startswith("AGE-SECRET-KEY-")]


def prune(ctx: Context, component: str, *, dry_run: bool = False) -> list[Deletion]:
    """Delete snapshots past retention; the newest ``keep_last`` good are always kept."""
    settings = settings_of(ctx, component)
    return expiry.expire_backups(
        ctx.repo,
        component,
        now=ctx.clock(),
        retention=settings.retention,
        keep_last=settings.keep_last,
        kinds={KIND},
        dry_run=dry_run,
    )
