"""Composable streaming stages over byte chunks: zstd, sha256, age; memory stays constant."""

from __future__ import annotations

import hashlib
import io
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import zstandard

from workers.core.errors import IntegrityError, KosmosError

CHUNK = 1 << 20
_END = object()


class Tap:
    """Counts and hashes bytes as they stream past; read ``size`` and ``hexdigest`` after."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def __call__(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass chunks through unchanged while counting and hashing them."""
        for chunk in chunks:
            self._hash.update(chunk)
            self.size += len(chunk)
            yield chunk

    @property
    def hexdigest(self) -> str:
        """The sha256 of everything seen so far."""
        return self._hash.hexdigest()


def compress(chunks: Iterable[bytes], level: int = 3, threads: int = 2) -> Iterator[bytes]:
    """zstd-compress a stream (multithreaded when ``threads`` > 0)."""
    compressor = zstandard.ZstdCompressor(level=level, threads=threads)
    chunker = compressor.chunker(chunk_size=CHUNK)
    for chunk in chunks:
        yield from chunker.compress(chunk)
    yield from chunker.finish()


def decompress(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Undo ``compress``; a damaged frame raises IntegrityError."""
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    try:
        for chunk in chunks:
            out = decompressor.decompress(chunk)
            if out:
                yield out
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"compressed stream is damaged: {exc}") from exc
    if not decompressor.eof:
        raise IntegrityError("compressed stream ended early")


def verify_sha256(chunks: Iterable[bytes], expected: str, name: str) -> Iterator[bytes]:
    """Pass chunks through and raise IntegrityError at the end if the sha256 differs.

    Consumers must treat what they received as untrusted until the stream ends.
    """
    tap = Tap()
    yield from tap(chunks)
    if tap.hexdigest != expected:
        raise IntegrityError(
            f"checksum mismatch in object {name}: stored data is damaged",
            hint=f"expected sha256 {expected[:12]}…, got {tap.hexdigest[:12]}…",
        )


def rechunk(chunks: Iterable[bytes], size: int = CHUNK) -> Iterator[bytes]:
    """Re-cut a stream into chunks of at least ``size`` bytes (the last may be shorter)."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def encrypt(chunks: Iterable[bytes], recipients: Sequence[str]) -> Iterator[bytes]:
    """age-encrypt a stream to the given public recipients (pyrage, streamed in a thread)."""
    import pyrage

    parsed = [_recipient(pyrage, text) for text in recipients]
    return _through_thread(chunks, lambda src, dst: pyrage.encrypt_io(src, dst, parsed), "encrypt")


def decrypt(chunks: Iterable[bytes], identities: Sequence[str]) -> Iterator[bytes]:
    """age-decrypt a stream with the given identities (``AGE-SECRET-KEY-…`` lines)."""
    import pyrage

    parsed = [pyrage.x25519.Identity.from_str(text.strip()) for text in identities]
    return _through_thread(chunks, lambda src, dst: pyrage.decrypt_io(src, dst, parsed), "decrypt")


def _recipient(pyrage: Any, text: str) -> Any:
    if text.startswith("age1"):
        return pyrage.x25519.Recipient.from_str(text)
    return pyrage.ssh.Recipient.from_str(text)


class _IterReader(io.RawIOBase):
    """A read-only file over an iterator of chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


class _QueueWriter(io.RawIOBase):
    """A write-only file that hands each write to a bounded queue."""

    def __init__(self, out: queue.Queue[object]) -> None:
        self._out = out

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._out.put(bytes(data))
        return len(data)


def _through_thread(chunks: Iterable[bytes], work: Any, what: str) -> Iterator[bytes]:
    """Run a push-style ``work(reader, writer)`` in a thread and yield what it writes."""
    out: queue.Queue[object] = queue.Queue(maxsize=16)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work(io.BufferedReader(_IterReader(chunks), CHUNK), _QueueWriter(out))
        except BaseException as exc:  # handed to the consumer below
            failure.append(exc)
        finally:
            out.put(_END)

    thread = threading.Thread(target=run, name=f"age-{what}", daemon=True)
    thread.start()
    yield from rechunk(_drain(out))
    thread.join()
    if failure:
        exc = failure[0]
        if isinstance(exc, KosmosError):
            raise exc
        raise IntegrityError(f"age {what} failed: {exc}", hint="check the age identity") from exc


def _drain(out: queue.Queue[object]) -> Iterator[bytes]:
    while (item := out.get()) is not _END:
        yield item  # type: ignore[misc]
