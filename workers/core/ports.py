"""Small Protocols the core and jobs depend on; adapters implement them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Protocol

from pydantic import ConfigDict

from workers.core.model import Model


class ObjectInfo(Model):
    """One stored object as a listing shows it."""

    model_config = ConfigDict(frozen=True)

    key: str
    size: int
    modified: datetime


class PendingUpload(Model):
    """An upload that was started and never completed (a multipart upload or a temp file)."""

    model_config = ConfigDict(frozen=True)

    key: str
    upload_id: str
    started: datetime


class Store(Protocol):
    """A flat object store; keys are relative to the store's own prefix.

    ``put_stream`` makes an object visible only once all of it is stored: an
    interrupted write leaves at most a pending upload, never a partial object.
    """

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> int:
        """Store the concatenated chunks under ``key`` with bounded memory; return the size."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small object in one request."""
        ...

    def get_stream(self, key: str) -> Iterator[bytes]:
        """Yield the object's bytes in chunks; NotFoundError when absent."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The whole (small) object; NotFoundError when absent."""
        ...

    def exists(self, key: str) -> bool:
        """Whether ``key`` is stored."""
        ...

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order."""
        ...

    def delete(self, keys: Iterable[str]) -> int:
        """Delete keys (missing ones are ignored); return how many were asked for."""
        ...

    def pending_uploads(self, prefix: str) -> list[PendingUpload]:
        """Uploads under ``prefix`` that were started and never completed."""
        ...

    def abort_upload(self, upload: PendingUpload) -> None:
        """Discard a pending upload and the space it holds."""
        ...

    def describe(self) -> str:
        """Where this store points, without credentials, for messages."""
        ...


class Clock(Protocol):
    """The time source, passed in so policy can be tested at any instant."""

    def __call__(self) -> datetime:
        """Now, timezone-aware UTC."""
        ...


class Progress(Protocol):
    """Receives progress from long work; jobs turn it into events, the CLI into a bar."""

    def __call__(
        self,
        phase: str,
        *,
        done_bytes: int | None = None,
        total_bytes: int | None = None,
        note: str | None = None,
    ) -> None:
        """Report the current phase, bytes done (and expected, when known), or a step note."""
        ...


def no_progress(
    phase: str,
    *,
    done_bytes: int | None = None,
    total_bytes: int | None = None,
    note: str | None = None,
) -> None:
    """A Progress that discards everything."""
