"""FrameWalk: the end of a zstd frame, found from block headers alone, however it is fed."""

from __future__ import annotations

import os

import pytest
import zstandard

from workers.core.errors import IntegrityError
from workers.storage import pipeline
from workers.storage.zstd_frame import FrameWalk

PAYLOADS = {
    "empty": b"",
    "text": b"row 42, some text\n" * 20_000,
    "random": os.urandom(300_000),  # raw blocks
    "zeros": bytes(1 << 20),  # RLE blocks
    "mixed": os.urandom(70_000) + bytes(500_000) + b"abc" * 50_000,
}


def frames(data: bytes) -> dict[str, bytes]:
    """The same data framed differently: with and without a content size and checksum."""
    streamed = b"".join(pipeline.compress([data], level=3, threads=2))  # ours: MT, checksum
    return {
        "ours": streamed,
        "one-shot": zstandard.ZstdCompressor(level=1).compress(data),  # content size, no sum
        "one-shot-checksum": zstandard.ZstdCompressor(write_checksum=True).compress(data),
    }


def walk(data: bytes, piece: int) -> FrameWalk:
    frame = FrameWalk()
    for at in range(0, len(data), piece):
        frame.feed(data[at : at + piece])
    return frame


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_the_walk_ends_exactly_where_the_frame_ends(payload: str) -> None:
    for framing, packed in frames(PAYLOADS[payload]).items():
        for piece in (1, 7, 4096, len(packed)):
            whole = walk(packed, piece)
            assert whole.ended and whole.trailing == 0, (framing, piece)
        cuts = {1, 4, 5, 6, len(packed) // 2, len(packed) - 4, len(packed) - 1}
        for cut in sorted(c for c in cuts if 0 < c < len(packed)):
            assert not walk(packed[:cut], 3).ended, (framing, cut)
        padded = walk(packed + b"\x28\xb5\x2f\xfdmore", 1000)
        assert padded.ended and padded.trailing == 8, framing


def test_bytes_that_are_not_a_frame_are_damaged() -> None:
    with pytest.raises(IntegrityError, match="not a zstd frame"):
        FrameWalk().feed(b"PK\x03\x04 a zip file")


@pytest.mark.parametrize("cut", [1, 100, -5, -1])
def test_a_cut_stream_decodes_to_an_error_never_to_shorter_data(cut: int) -> None:
    packed = frames(PAYLOADS["mixed"])["ours"][:cut]
    pieces = [packed[: len(packed) // 2], packed[len(packed) // 2 :]]
    with pytest.raises(IntegrityError, match="ended early"):
        b"".join(pipeline.decompress(pieces))
