"""Composable streaming stages over byte chunks: zstd, sha256, age; memory stays constant."""

from __future__ import annotations

import contextlib
import hashlib
import io
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any, cast

import zstandard

from workers.core.errors import ConfigError, IntegrityError, KosmosError
from workers.storage.zstd_frame import FrameWalk

CHUNK = 1 << 20
JOB_SIZE = 2 << 20
_END = object()


class Meter:
    """Counts bytes as they stream past; read ``size`` after."""

    def __init__(self) -> None:
        self.size = 0

    def __call__(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass chunks through unchanged while counting them."""
        for chunk in chunks:
            self._see(chunk)
            yield chunk

    def _see(self, chunk: bytes) -> None:
        self.size += len(chunk)


class Tap(Meter):
    """Counts and hashes bytes as they stream past; read ``size`` and ``hexdigest`` after."""

    def __init__(self) -> None:
        super().__init__()
        self._hash = hashlib.sha256()

    def _see(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        super()._see(chunk)

    @property
    def hexdigest(self) -> str:
        """The sha256 of everything seen so far."""
        return self._hash.hexdigest()


def compress(chunks: Iterable[bytes], level: int = 3, threads: int = 2) -> Iterator[bytes]:
    """zstd-compress a stream (multithreaded when ``threads`` > 0)."""
    # The frame checksum lets decompress() itself catch damage that would otherwise decode
    # silently into wrong bytes (zstd blocks carry no checksum of their own).
    # 2 MiB jobs: zstd's default at level 3 (8 MiB, with in and out buffers per job) held
    # about 60 MiB at two threads, 40 more than this, and put a backup to S3 over 150 MiB
    # (bench/postgres_backup.py); the ratio is the same on dumps.
    params = zstandard.ZstdCompressionParameters.from_level(
        level, threads=threads, write_checksum=True, job_size=JOB_SIZE if threads > 0 else 0
    )
    compressor = zstandard.ZstdCompressor(compression_params=params)
    chunker = compressor.chunker(chunk_size=CHUNK)
    for chunk in chunks:
        yield from chunker.compress(chunk)
    yield from chunker.finish()


def decompress(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Undo ``compress`` in bounded memory; a damaged, cut or padded stream is an IntegrityError."""
    return rechunk(_decompress(chunks))


def _decompress(chunks: Iterable[bytes]) -> Iterator[bytes]:
    # read_to_iter hands out at most CHUNK bytes at a time, however far the input expands
    # (a compressed run of zeros), and decodes at C speed: 0.4 s of CPU less per 500 MB
    # than feeding a decompressobj 1 KiB slices. It does not notice input that stops
    # mid-frame; the FrameWalk over the same bytes does.
    frame = FrameWalk()
    source = _Source(chunks, frame)
    decoder = zstandard.ZstdDecompressor()
    try:
        reader = cast(IO[bytes], source)  # read_to_iter needs only .read()
        yield from decoder.read_to_iter(reader, read_size=CHUNK, write_size=CHUNK)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"compressed stream is damaged: {exc}") from exc
    source.drain()  # the rest of the input: padding, and the sha256 check behind it
    if not frame.ended:
        raise IntegrityError("compressed stream ended early")
    if frame.trailing:
        raise IntegrityError("compressed stream has data after its end")


class _Source:
    """Chunks as the file-like object read_to_iter reads, each byte shown to a FrameWalk."""

    def __init__(self, chunks: Iterable[bytes], frame: FrameWalk) -> None:
        self.chunks = iter(chunks)
        self.frame = frame
        self.buffer = b""

    def read(self, size: int = -1) -> bytes:
        while not self.buffer:
            chunk = next(self.chunks, None)
            if chunk is None:
                return b""
            self.buffer = bytes(chunk)
        if size < 0 or size >= len(self.buffer):
            out, self.buffer = self.buffer, b""
        else:
            out, self.buffer = self.buffer[:size], self.buffer[size:]
        self.frame.feed(out)
        return out

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


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
        if not buffer and len(chunk) >= size:
            yield chunk  # already whole: no copy
            continue
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
    if not parsed:
        raise ConfigError("cannot encrypt without age recipients", hint="set encryption.recipients")
    return _through_thread(chunks, lambda src, dst: pyrage.encrypt_io(src, dst, parsed), "encrypt")


def decrypt(chunks: Iterable[bytes], identities: Sequence[str]) -> Iterator[bytes]:
    """age-decrypt a stream with the given identities (``AGE-SECRET-KEY-…`` lines)."""
    import pyrage

    parsed = [_identity(pyrage, text) for text in identities]
    return _through_thread(chunks, lambda src, dst: pyrage.decrypt_io(src, dst, parsed), "decrypt")


def _recipient(pyrage: Any, text: str) -> Any:
    try:
        if text.startswith("age1"):
            return pyrage.x25519.Recipient.from_str(text)
        return pyrage.ssh.Recipient.from_str(text)
    except Exception:
        raise ConfigError(
            f"{text[:12]!r}… is not an age recipient", hint="check encryption.recipients"
        ) from None


def _identity(pyrage: Any, text: str) -> Any:
    # Never echo an identity: it is a secret key. `from None` keeps it out of tracebacks too.
    try:
        return pyrage.x25519.Identity.from_str(text.strip())
    except Exception:
        raise ConfigError(
            "the age identity is not valid (expected an AGE-SECRET-KEY-1… line)",
            hint="check encryption.identity_file",
        ) from None


class _IterReader(io.RawIOBase):
    """A read-only file over an iterator of chunks."""

    def __init__(self, chunks: Iterable[bytes], stop: threading.Event | None = None) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self._stop = stop
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if self._stop is not None and self._stop.is_set():
                raise _Cancelled
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
            except BaseException as exc:
                # Kept so the source's own error (EngineError, IntegrityError) reaches the
                # consumer instead of the I/O error the age library turns it into.
                self.error = exc
                raise
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        # A view, not a slice of bytes: re-slicing bytes would copy the rest every call.
        self._pending = self._pending[count:]
        return count

    def close_source(self) -> None:
        """Close the source iterator (a generator holding a subprocess, say)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()


class _QueueWriter(io.RawIOBase):
    """A write-only file that hands each write to a bounded queue."""

    def __init__(self, out: queue.Queue[object], stop: threading.Event) -> None:
        self._out = out
        self._stop = stop

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        item = bytes(data)
        while True:
            if self._stop.is_set():
                raise _Cancelled
            try:
                self._out.put(item, timeout=0.1)
                return len(item)
            except queue.Full:
                continue


class _Cancelled(Exception):
    """The consumer went away; the worker thread stops reading and writing."""


def _through_thread(chunks: Iterable[bytes], work: Any, what: str) -> Iterator[bytes]:
    """Run a push-style ``work(reader, writer)`` in a thread and yield what it writes."""
    out: queue.Queue[object] = queue.Queue(maxsize=16)
    stop = threading.Event()
    failure: list[BaseException] = []
    source = _IterReader(chunks, stop)

    def run() -> None:
        try:
            reader = io.BufferedReader(source, CHUNK)
            work(reader, _QueueWriter(out, stop))
            # Read the source to its end so that a checksum stage upstream sees all of it.
            if reader.read(1):
                raise IntegrityError(f"age {what}: the stream has data after its end")
        except BaseException as exc:  # handed to the consumer below
            failure.append(source.error or exc)
            source.close_source()
        finally:
            _put_end(out, stop)

    thread = threading.Thread(target=run, name=f"age-{what}", daemon=True)
    thread.start()
    try:
        yield from rechunk(_drain(out))
    finally:
        # A consumer that stops early (a failed upload) must not leave the thread blocked on
        # a full queue, holding the source open: tell it to stop, then let it finish.
        stop.set()
        thread.join(timeout=60)
    if failure and not isinstance(failure[0], _Cancelled):
        exc = failure[0]
        if isinstance(exc, KosmosError):
            raise exc
        raise IntegrityError(f"age {what} failed: {exc}", hint="check the age identity") from exc


def _put_end(out: queue.Queue[object], stop: threading.Event) -> None:
    while True:
        try:
            out.put(_END, timeout=0.1)
            return
        except queue.Full:
            if stop.is_set():
                return


def _drain(out: queue.Queue[object]) -> Iterator[bytes]:
    while (item := out.get()) is not _END:
        yield item  # type: ignore[misc]
