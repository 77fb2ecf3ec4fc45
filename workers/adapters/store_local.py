"""A Store on a local directory: the embedded default, and a staging area for tests."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from workers.core.errors import NotFoundError, StorageError
from workers.core.ports import ObjectInfo, PendingUpload

_PART = ".part"
_CHUNK = 1 << 20


class LocalStore:
    """Objects are files under ``root``; a write lands in a temp file renamed into place."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        """The directory, for messages."""
        return f"file://{self.root}"

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/"):
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
        size = 0
        try:
            with open(temp, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    size += len(chunk)
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
            if path.name.endswith(_PART):
                continue
            stat = path.stat()
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
            path.unlink(missing_ok=True)
            count += 1
            _prune_empty(path.parent, self.root)
        return count

    def pending_uploads(self, prefix: str) -> list[PendingUpload]:
        """Temp files left by writers that never finished."""
        found = []
        for path in self._walk(prefix):
            if not path.name.endswith(_PART):
                continue
            name = path.name[1 : -len(_PART)].rsplit(".", 1)[0]
            found.append(
                PendingUpload(
                    key=(path.parent / name).relative_to(self.root).as_posix(),
                    upload_id=path.relative_to(self.root).as_posix(),
                    started=datetime.fromtimestamp(path.stat().st_mtime, UTC),
                )
            )
        return found

    def abort_upload(self, upload: PendingUpload) -> None:
        """Delete the temp file."""
        path = self._path(upload.upload_id)
        path.unlink(missing_ok=True)
        _prune_empty(path.parent, self.root)

    def _walk(self, prefix: str) -> Iterator[Path]:
        base = self.root / prefix
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return
        text_prefix = prefix
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                if path.relative_to(self.root).as_posix().startswith(text_prefix):
                    yield path


def _read_chunks(handle: object) -> Iterator[bytes]:
    with handle:  # type: ignore[attr-defined]
        while chunk := handle.read(_CHUNK):  # type: ignore[attr-defined]
            yield chunk


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
