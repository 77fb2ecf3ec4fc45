"""A Store on a local directory: the embedded default, and a staging area for tests."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from workers.core.errors import NotFoundError, StorageError
from workers.core.ports import ObjectInfo, PendingUpload

_PART = ".part"
_WRITEBACK_EVERY = 32 << 20
# Temp files are ``.<name>.<12 hex>.part`` beside their object; only names of exactly this
# shape are hidden from listings, so an object that merely ends in ``.part`` stays visible.
_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{12}\.part$")
_CHUNK = 1 << 20


class LocalStore:
    """Objects are files under ``root``; a write lands in a temp file renamed into place."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        """The directory, for messages."""
        return f"file://{self.root}"

    @contextlib.contextmanager
    def index_lock(self, component: str) -> Iterator[None]:
        """Hold the store-wide index lock (flock on the root directory) among all processes.

        One lock for every component: index updates take milliseconds, and a lock file
        would show up as an object.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root, os.O_RDONLY)
        except OSError as exc:
            raise StorageError(f"cannot lock {self.root}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or ".." in parts or _TEMP.match(parts[-1]):
            raise StorageError(f"refusing unsafe object key {key!r}")
        return self.root / key

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        """Write chunks to a temp file, fsync, then rename: all or nothing."""
        final = self._path(key)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {final.parent}: {exc.strerror}") from exc
        temp = final.with_name(f".{final.name}.{secrets.token_hex(6)}{_PART}")
        size = flushed = 0
        try:
            with open(temp, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    size += len(chunk)
                    if size - flushed >= _WRITEBACK_EVERY:
                        flushed = _start_writeback(handle, flushed, size)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StorageError(f"cannot write {key}: {exc.strerror}") from exc
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return size

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write a small object atomically."""
        self.put_stream(key, [data])

    def get_stream(self, key: str) -> Iterator[bytes]:
        """Yield the file in 1 MiB chunks."""
        path = self._path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the generator below
        except FileNotFoundError:
            raise NotFoundError(f"object {key} does not exist in {self.describe()}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {key}: {exc.strerror}") from exc
        return _read_chunks(handle)

    def get_bytes(self, key: str) -> bytes:
        """The whole file."""
        return b"".join(self.get_stream(key))

    def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return self._path(key).is_file()

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Files under the prefix, in key order, temp files excluded."""
        for path in self._walk(prefix):
            if _TEMP.match(path.name):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # deleted since the walk saw it
            yield ObjectInfo(
                key=path.relative_to(self.root).as_posix(),
                size=stat.st_size,
                modified=datetime.fromtimestamp(stat.st_mtime, UTC),
            )

    def delete(self, keys: Iterable[str]) -> int:
        """Remove files and then any directories left empty."""
        count = 0
        for key in keys:
            path = self._path(key)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot delete {key}: {exc.strerror}") from exc
            count += 1
            _prune_empty(path.parent, self.root)
        return count

    def pending_uploads(self, prefix: str) -> list[PendingUpload]:
        """Temp files left by writers that never finished."""
        found = []
        for path in self._walk(prefix):
            match = _TEMP.match(path.name)
            if match is None:
                continue
            try:
                started = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            except FileNotFoundError:
                continue  # its writer finished or gave up meanwhile
            found.append(
                PendingUpload(
                    key=(path.parent / match.group("name")).relative_to(self.root).as_posix(),
                    upload_id=path.relative_to(self.root).as_posix(),
                    started=started,
                )
            )
        return found

    def abort_upload(self, upload: PendingUpload) -> None:
        """Delete the temp file."""
        parts = upload.upload_id.split("/")
        if ".." in parts or upload.upload_id.startswith("/") or not _TEMP.match(parts[-1]):
            raise StorageError(f"{upload.upload_id!r} is not a pending upload of this store")
        path = self.root / upload.upload_id
        path.unlink(missing_ok=True)
        _prune_empty(path.parent, self.root)

    def _walk(self, prefix: str) -> Iterator[Path]:
        if prefix.startswith("/") or ".." in prefix.split("/"):
            raise StorageError(f"refusing unsafe prefix {prefix!r}")
        # A prefix is a string prefix, as on S3: "pg" also matches "pgx/…", so the walk
        # starts at the prefix's own folder only when it ends with a slash.
        base = self.root / prefix
        start = base if prefix.endswith("/") or not prefix else base.parent
        if not start.is_dir():
            return
        for path in _ordered_files(start):
            if path.relative_to(self.root).as_posix().startswith(prefix):
                yield path


def _ordered_files(directory: Path) -> Iterator[Path]:
    """Files below ``directory`` in key order, as S3 lists them.

    os.walk gives a folder's files before its subfolders, but in key order ``a/b/c`` comes
    before ``a/b0``: a folder sorts as its name followed by "/".
    """
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return  # removed since its parent was listed
    named = [(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, e) for e in entries]
    for name, entry in sorted(named, key=lambda pair: pair[0]):
        if name.endswith("/"):
            yield from _ordered_files(Path(entry.path))
        elif entry.is_file(follow_symlinks=False):
            yield Path(entry.path)


def _read_chunks(handle: object) -> Iterator[bytes]:
    with handle:  # type: ignore[attr-defined]
        while chunk := handle.read(_CHUNK):  # type: ignore[attr-defined]
            yield chunk


def _start_writeback(handle: BinaryIO, start: int, end: int) -> int:
    """Have the kernel start writing what was written so far, without waiting for it.

    The fsync at the end then waits for the last stretch only, not for the whole object
    (0.13 s for 236 MB here), and the backup leaves no gigabytes of dirty cache behind.
    PostgreSQL's pg_flush_data does the same where sync_file_range is missing.
    """
    handle.flush()
    with contextlib.suppress(OSError):
        os.posix_fadvise(handle.fileno(), start, end - start, os.POSIX_FADV_DONTNEED)
    return end


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune_empty(directory: Path, root: Path) -> None:
    while directory != root and directory.is_relative_to(root):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
