"""Streaming stages: zstd, sha256 and age, their failures, and their memory bounds."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator

import pyrage
import pytest

from workers.core.errors import ConfigError, EngineError, IntegrityError
from workers.storage import pipeline

MIB = 1 << 20


def pieces(data: bytes, size: int = 100_000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def compressed(data: bytes, threads: int = 0) -> bytes:
    return b"".join(pipeline.compress(pieces(data), level=1, threads=threads))


@pytest.fixture(scope="module")
def sample() -> bytes:
    """Some compressible and some random bytes, 3 MiB."""
    return (b"row 1234, some text\n" * 50_000)[: 2 * MIB] + os.urandom(MIB)


@pytest.mark.parametrize("threads", [0, 2])
@pytest.mark.parametrize("length", [0, 1, 3 * MIB])
def test_compress_round_trip(sample: bytes, threads: int, length: int) -> None:
    data = sample[:length]
    packed = compressed(data, threads)
    assert b"".join(pipeline.decompress(pieces(packed, 4096))) == data
    if length == 3 * MIB:
        assert len(packed) < len(data)


def test_damaged_compressed_stream_is_an_integrity_error(sample: bytes) -> None:
    packed = bytearray(compressed(sample))
    packed[len(packed) // 3] ^= 0x40
    with pytest.raises(IntegrityError, match="compressed stream"):
        b"".join(pipeline.decompress(pieces(bytes(packed))))


def test_cut_padded_and_foreign_streams_are_integrity_errors(sample: bytes) -> None:
    packed = compressed(sample)
    with pytest.raises(IntegrityError, match="ended early"):
        b"".join(pipeline.decompress(pieces(packed[:-10])))
    with pytest.raises(IntegrityError, match="after its end"):
        b"".join(pipeline.decompress(pieces(packed + b"extra")))
    with pytest.raises(IntegrityError, match="damaged"):
        b"".join(pipeline.decompress([b"this is not zstd at all" * 10]))
    with pytest.raises(IntegrityError, match="ended early"):
        b"".join(pipeline.decompress([]))


def test_decompression_of_a_compressed_run_stays_in_bounded_chunks() -> None:
    # 512 MiB of zeros compress to a few KiB; fed back in one chunk, the decompressor must
    # not hand out (or hold) the whole expansion at once.
    zeros = bytes(MIB)
    packed = b"".join(pipeline.compress((zeros for _ in range(512)), level=1, threads=0))
    assert len(packed) < 64 * 1024
    total = largest = 0
    started = time.monotonic()
    for chunk in pipeline.decompress([packed]):
        total += len(chunk)
        largest = max(largest, len(chunk))
    assert total == 512 * MIB
    assert largest <= 2 * pipeline.CHUNK
    assert time.monotonic() - started < 30


def test_tap_and_verify_sha256(sample: bytes) -> None:
    tap = pipeline.Tap()
    assert b"".join(tap(pieces(sample))) == sample
    assert tap.size == len(sample)
    assert tap.hexdigest == hashlib.sha256(sample).hexdigest()
    good = hashlib.sha256(sample).hexdigest()
    assert b"".join(pipeline.verify_sha256(pieces(sample), good, "dump.zst")) == sample
    with pytest.raises(IntegrityError, match="checksum mismatch in object dump.zst"):
        b"".join(pipeline.verify_sha256(pieces(sample), "0" * 64, "dump.zst"))


def test_rechunk() -> None:
    out = list(pipeline.rechunk([b"a" * 300, b"b" * 300, b"c" * 500, b"d" * 10], size=1000))
    assert [len(c) for c in out] == [1100, 10]
    assert b"".join(out) == b"a" * 300 + b"b" * 300 + b"c" * 500 + b"d" * 10
    assert list(pipeline.rechunk([], size=10)) == []


@pytest.fixture(scope="module")
def identity() -> pyrage.x25519.Identity:
    return pyrage.x25519.Identity.generate()


def test_age_round_trip(sample: bytes, identity: pyrage.x25519.Identity) -> None:
    recipient = str(identity.to_public())
    sealed = b"".join(pipeline.encrypt(pieces(sample), [recipient]))
    assert sample[:1000] not in sealed
    assert sealed.startswith(b"age-encryption.org/v1")
    assert b"".join(pipeline.decrypt(pieces(sealed, 70_000), [str(identity)])) == sample


def test_age_refuses_the_wrong_identity_and_damage(
    sample: bytes, identity: pyrage.x25519.Identity
) -> None:
    sealed = b"".join(pipeline.encrypt(pieces(sample), [str(identity.to_public())]))
    stranger = str(pyrage.x25519.Identity.generate())
    with pytest.raises(IntegrityError, match="age decrypt failed"):
        b"".join(pipeline.decrypt(pieces(sealed), [stranger]))
    damaged = bytearray(sealed)
    damaged[len(damaged) // 2] ^= 0x01
    with pytest.raises(IntegrityError):
        b"".join(pipeline.decrypt(pieces(bytes(damaged)), [str(identity)]))


def test_bad_keys_are_config_errors_that_do_not_echo_secrets() -> None:
    with pytest.raises(ConfigError) as caught:
        list(pipeline.decrypt([b"x"], ["AGE-SECRET-KEY-1NOTAREALKEYATALL"]))
    assert "NOTAREALKEY" not in caught.value.one_line()
    with pytest.raises(ConfigError, match="not an age recipient"):
        list(pipeline.encrypt([b"x"], ["age1bogus"]))
    with pytest.raises(ConfigError, match="recipients"):
        list(pipeline.encrypt([b"x"], []))


def test_source_errors_keep_their_type_through_age(identity: pyrage.x25519.Identity) -> None:
    def failing() -> Iterator[bytes]:
        yield os.urandom(MIB)
        raise EngineError("pg_dump failed: disk full")

    with pytest.raises(EngineError, match="disk full"):
        b"".join(pipeline.encrypt(failing(), [str(identity.to_public())]))


def test_a_consumer_that_stops_early_releases_the_source(
    identity: pyrage.x25519.Identity,
) -> None:
    closed = threading.Event()

    def endless() -> Iterator[bytes]:
        try:
            while True:
                yield os.urandom(64 * 1024)
        finally:
            closed.set()

    before = threading.active_count()
    stream = pipeline.encrypt(endless(), [str(identity.to_public())])
    first = next(stream)
    assert first
    stream.close()  # type: ignore[attr-defined]  # an upload failed: nobody reads the rest
    assert closed.wait(10)
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before
