"""The backup repository: backups as objects plus a manifest written last, and the index."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from pydantic import ValidationError

from workers.core.config import Settings
from workers.core.errors import IntegrityError, NotFoundError, StorageError
from workers.core.ids import new_backup_id, parse_backup_id
from workers.core.manifest import (
    MANIFEST_NAME,
    OBJECT_NAME_PATTERN,
    CatalogIndex,
    Manifest,
    ObjectEntry,
    VerificationRecord,
)
from workers.core.ports import Store
from workers.storage import pipeline
from workers.storage.keys import backup_prefix, index_key, manifest_key, object_key

_INDEX_ATTEMPTS = 8
_OBJECT_NAME = re.compile(OBJECT_NAME_PATTERN)
Clock = Callable[[], datetime]
IndexLock = Callable[[str], AbstractContextManager[object]]
"""Given a component name, a context manager that holds that component's index lock."""


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class PipelineOptions:
    """How objects are transformed on their way into the store."""

    compression_level: int = 3
    compression_threads: int = 2
    recipients: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineOptions:
        """Options as configured."""
        return cls(
            compression_level=settings.compression.level,
            compression_threads=settings.compression.threads,
            recipients=settings.encryption.recipients,
        )


@dataclass
class SweepReport:
    """What a sweep removed."""

    aborted_uploads: list[str] = field(default_factory=list)
    orphan_backups: list[str] = field(default_factory=list)


class Repository:
    """Reads and writes backups in a Store under ``<component>/<backup-id>/…``."""

    def __init__(
        self,
        store: Store,
        options: PipelineOptions | None = None,
        clock: Clock = utc_now,
        index_lock: IndexLock | None = None,
    ) -> None:
        self.store = store
        self.options = options or PipelineOptions()
        self.clock = clock
        # Serializes index updates across processes (e.g. a Redis lock); without one, a
        # store's own lock is used when it has one (LocalStore), else verify-after-write.
        self.index_lock = index_lock or getattr(store, "index_lock", None)

    # -- writing -----------------------------------------------------------------------------

    def begin(self, component: str, kind: str, backup_id: str | None = None) -> BackupWriter:
        """Start a backup; nothing is visible until ``commit``."""
        started = self.clock()
        return BackupWriter(
            self, component, kind, backup_id or new_backup_id(component, started), started
        )

    # -- reading -----------------------------------------------------------------------------

    def manifest(self, backup_id: str) -> Manifest:
        """The manifest of a committed backup; NotFoundError otherwise."""
        try:
            component, _ = parse_backup_id(backup_id)
        except ValueError as exc:
            raise NotFoundError(str(exc)) from None
        try:
            raw = self.store.get_bytes(manifest_key(component, backup_id))
        except NotFoundError:
            raise NotFoundError(
                f"backup {backup_id} does not exist", see=("list", component)
            ) from None
        try:
            return Manifest.model_validate_json(raw)
        except ValidationError as exc:
            raise IntegrityError(
                f"manifest of {backup_id} is malformed: {exc.errors()[0]['msg']}"
            ) from None

    def index(self, component: str) -> CatalogIndex:
        """The component's index, rebuilt from manifests when it is missing."""
        try:
            raw = self.store.get_bytes(index_key(component))
        except NotFoundError:
            return self.rebuild_index(component)
        try:
            return CatalogIndex.model_validate_json(raw)
        except ValidationError:
            return self.rebuild_index(component)

    def rebuild_index(self, component: str) -> CatalogIndex:
        """Recreate the index from the manifests in the store (lists the component once)."""
        old_facts: dict[str, Any] = {}
        with contextlib.suppress(NotFoundError, ValidationError):
            old_facts = CatalogIndex.model_validate_json(
                self.store.get_bytes(index_key(component))
            ).facts
        index = CatalogIndex(component=component, facts=old_facts)
        for info in self.store.list_objects(f"{component}/"):
            parts = info.key.split("/")
            if len(parts) == 3 and parts[2] == MANIFEST_NAME:
                with contextlib.suppress(IntegrityError, NotFoundError):
                    index.upsert(self.manifest(parts[1]).summary())
        self._save_index(index)
        return index

    def open_object(
        self, manifest: Manifest, name: str, identities: Sequence[str] = ()
    ) -> Iterator[bytes]:
        """Stream an object back through the pipeline in reverse, checking its sha256.

        The checksum is confirmed when the stream ends: a consumer must not trust
        (commit, promote) what it restored until the iterator finished cleanly.
        """
        entry = _entry(manifest, name)
        if entry.meta.get("encrypted") and not identities:
            raise IntegrityError(
                f"object {entry.name} is age-encrypted",
                hint="pass an age identity to restore it",
            )
        stored = pipeline.verify_sha256(
            self.store.get_stream(object_key(manifest, entry.name)), entry.sha256, entry.name
        )
        stream: Iterable[bytes] = stored
        if entry.meta.get("encrypted"):
            stream = pipeline.decrypt(stream, identities)
        if entry.meta.get("compression") == "zstd":
            stream = pipeline.decompress(stream)
        return _naming(stream, f"{manifest.id}/{entry.name}")

    def check_object(self, manifest: Manifest, name: str) -> None:
        """Read one stored object end to end and compare size and sha256."""
        entry = _entry(manifest, name)
        tap = pipeline.Tap()
        for _ in pipeline.verify_sha256(
            tap(self.store.get_stream(object_key(manifest, entry.name))), entry.sha256, entry.name
        ):
            pass
        if tap.size != entry.size:
            raise IntegrityError(
                f"object {entry.name} is {tap.size} bytes, manifest says {entry.size}"
            )

    # -- changing committed backups ----------------------------------------------------------

    def record_verification(self, manifest: Manifest, record: VerificationRecord) -> Manifest:
        """Store a verification result in the manifest and the index.

        It becomes the newest record; a deep one is also kept as the newest deep record,
        which a shallow check never overwrites. The stored manifest is read again first, so
        a deep record made meanwhile by another verification is kept too.
        """
        updated = self.manifest(manifest.id).verified(record)
        self.store.put_bytes(manifest_key(manifest.component, manifest.id), _dump(updated))
        self._update_index(manifest.component, lambda idx: idx.upsert(updated.summary()))
        return updated

    def delete(self, manifest: Manifest) -> None:
        """Remove a backup: manifest first (so it stops existing), then objects, then index."""
        self.store.delete([manifest_key(manifest.component, manifest.id)])
        self.store.delete(
            info.key
            for info in self.store.list_objects(backup_prefix(manifest.component, manifest.id))
        )
        self._update_index(manifest.component, lambda idx: idx.remove(manifest.id))

    def set_facts(self, component: str, **facts: Any) -> None:
        """Record engine facts (e.g. the last archived WAL time) in the component's index."""
        self._update_index(component, lambda idx: idx.facts.update(facts))

    def sweep(self, older_than: timedelta, components: Iterable[str]) -> SweepReport:
        """Abort stale pending uploads and delete backups that never got a manifest."""
        report = SweepReport()
        cutoff = self.clock() - older_than
        for component in components:
            for upload in self.store.pending_uploads(f"{component}/"):
                if upload.started < cutoff:
                    self.store.abort_upload(upload)
                    report.aborted_uploads.append(upload.key)
            report.orphan_backups += self._sweep_orphans(component, cutoff)
        return report

    def _sweep_orphans(self, component: str, cutoff: datetime) -> list[str]:
        by_backup: dict[str, list[Any]] = {}
        for info in self.store.list_objects(f"{component}/"):
            parts = info.key.split("/")
            # Only folders named like this component's backup ids: anything else under the
            # prefix (an engine's own layout) is not ours to delete.
            if len(parts) >= 3 and _is_backup_of(parts[1], component):
                by_backup.setdefault(parts[1], []).append(info)
        removed = []
        for backup_id, infos in by_backup.items():
            if any(i.key.endswith(f"/{MANIFEST_NAME}") and i.key.count("/") == 2 for i in infos):
                continue
            if max(i.modified for i in infos) < cutoff:
                self.store.delete(i.key for i in infos)
                removed.append(backup_id)
        if removed and self.store.exists(index_key(component)):
            # A delete() cut short after removing the manifest leaves an index entry behind.
            listed = {b.id for b in self.index(component).backups}
            if listed & set(removed):
                self._update_index(component, lambda idx: _forget(idx, removed))
        return removed

    # -- index ------------------------------------------------------------------------------

    def _update_index(self, component: str, change: Callable[[CatalogIndex], None]) -> None:
        # Read-modify-write with no lock: a commit and the WAL archiver's set_facts (another
        # process) can interleave and one would silently undo the other. Reading back what
        # we wrote catches almost every such loss; the changes are idempotent, so a retry on
        # the newer index is safe. `catalog rebuild` repairs whatever still slips through.
        lock = self.index_lock(component) if self.index_lock else contextlib.nullcontext()
        with lock:
            for _ in range(_INDEX_ATTEMPTS):
                index = self.index(component)
                change(index)
                written = self._save_index(index)
                with contextlib.suppress(NotFoundError):
                    if self.store.get_bytes(index_key(component)) == written:
                        return

    def _save_index(self, index: CatalogIndex) -> bytes:
        data = index.model_dump_json(indent=1).encode()
        self.store.put_bytes(index_key(index.component), data)
        return data


class BackupWriter:
    """Writes the objects of one backup, then commits its manifest; aborts on error."""

    def __init__(
        self, repo: Repository, component: str, kind: str, backup_id: str, started: datetime
    ) -> None:
        self.repo = repo
        self.component = component
        self.kind = kind
        self.id = backup_id
        self.started_at = started
        self.entries: list[ObjectEntry] = []
        self.committed: Manifest | None = None

    def __enter__(self) -> BackupWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and self.committed is None:
            with contextlib.suppress(Exception):
                self.abort()

    @property
    def prefix(self) -> str:
        """Key prefix of this backup's objects."""
        return backup_prefix(self.component, self.id)

    def write(
        self,
        name: str,
        chunks: Iterable[bytes],
        *,
        compress: bool = True,
        encrypt: bool | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ObjectEntry:
        """Stream one object through compression, encryption and hashing into the store."""
        options = self.repo.options
        encrypt = bool(options.recipients) if encrypt is None else encrypt
        if encrypt and not options.recipients:
            raise StorageError(
                f"object {name} must be encrypted but no age recipients are configured",
                hint="set encryption.recipients",
            )
        self._check_name(name + (".zst" if compress else "") + (".age" if encrypt else ""))
        # Only the stored bytes' sha256 is kept; hashing the raw stream as well cost
        # 0.3 s of CPU per 300 MB dumped, beside pg_dump on the same cores.
        raw = pipeline.Meter()
        stream: Iterable[bytes] = raw(chunks)
        stored_name = name
        info: dict[str, Any] = dict(meta or {})
        if compress:
            stream = pipeline.compress(
                stream, options.compression_level, options.compression_threads
            )
            stored_name += ".zst"
            info["compression"] = "zstd"
        if encrypt:
            stream = pipeline.encrypt(stream, options.recipients)
            stored_name += ".age"
            info["encrypted"] = True
        stored = pipeline.Tap()
        self.repo.store.put_stream(f"{self.prefix}{stored_name}", stored(stream))
        entry = ObjectEntry(
            name=stored_name,
            size=stored.size,
            sha256=stored.hexdigest,
            raw_size=raw.size,
            meta=info,
        )
        self.entries.append(entry)
        return entry

    def _check_name(self, stored_name: str) -> None:
        # Checked before anything is uploaded: an object stored as manifest.json would make
        # the backup appear to exist before it is complete, and a repeated name would
        # silently replace an object already listed in the manifest.
        parts = stored_name.split("/")
        if not _OBJECT_NAME.match(stored_name) or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"{stored_name!r} is not a valid object name")
        if stored_name == MANIFEST_NAME:
            raise ValueError(f"{stored_name!r} is reserved for the manifest")
        if any(entry.name == stored_name for entry in self.entries):
            raise ValueError(f"backup {self.id} already has an object {stored_name!r}")

    def commit(
        self,
        *,
        source: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        tool_versions: dict[str, str] | None = None,
        verification: VerificationRecord | None = None,
    ) -> Manifest:
        """Write the manifest (the backup now exists) and add it to the index.

        ``verification`` is written with it: a backup known to be flawed when it is
        committed never shows as good, not even for a moment.
        """
        if not self.entries:
            raise StorageError(
                f"backup {self.id} has no objects; refusing to commit an empty backup"
            )
        options = self.repo.options
        manifest = Manifest(
            id=self.id,
            component=self.component,
            kind=self.kind,
            started_at=self.started_at,
            finished_at=self.repo.clock(),
            objects=tuple(self.entries),
            compression="zstd" if any(e.meta.get("compression") for e in self.entries) else None,
            encryption_recipients=options.recipients
            if any(e.meta.get("encrypted") for e in self.entries)
            else (),
            tool_versions=tool_versions or {},
            source=source or {},
            details=details or {},
            verification=verification,
        )
        self.repo.store.put_bytes(manifest_key(self.component, self.id), _dump(manifest))
        self.committed = manifest
        self.repo._update_index(self.component, lambda idx: idx.upsert(manifest.summary()))
        return manifest

    def discard(self, name: str) -> None:
        """Delete one object already written, and drop it from the backup."""
        self.repo.store.delete([f"{self.prefix}{name}"])
        self.entries = [entry for entry in self.entries if entry.name != name]

    def abort(self) -> None:
        """Delete what this writer stored; the backup never existed."""
        self.repo.store.delete(info.key for info in self.repo.store.list_objects(self.prefix))


def _forget(index: CatalogIndex, backup_ids: list[str]) -> None:
    for backup_id in backup_ids:
        index.remove(backup_id)


def _is_backup_of(name: str, component: str) -> bool:
    try:
        return parse_backup_id(name)[0] == component
    except ValueError:
        return False


def _naming(stream: Iterable[bytes], name: str) -> Iterator[bytes]:
    # Damage is often caught by the decompressor or age before the checksum at the end;
    # whichever stage notices, the message must say which object is damaged.
    try:
        yield from stream
    except IntegrityError as exc:
        if name.rsplit("/", 1)[-1] in exc.message:
            raise
        raise IntegrityError(f"object {name}: {exc.message}", hint=exc.hint) from exc


def _entry(manifest: Manifest, name: str) -> ObjectEntry:
    try:
        return manifest.object(name)
    except KeyError:
        names = ", ".join(e.name for e in manifest.objects)
        raise NotFoundError(
            f"backup {manifest.id} has no object {name} (it has: {names})"
        ) from None


def _dump(manifest: Manifest) -> bytes:
    return json.dumps(manifest.model_dump(mode="json"), indent=1, sort_keys=True).encode()
