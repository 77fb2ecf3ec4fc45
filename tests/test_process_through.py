"""``process.stream_through``: a producer's output relayed into a consumer, with its tail
edited and a last word held back until the source checked out (real child processes)."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workers import process
from workers.core.errors import EngineError, IntegrityError

PY = sys.executable
MIB = 1 << 20
# Copies stdin to stdout, in pieces of argv[1] bytes (flushed), like a tool writing lines.
CAT = (
    "import sys\n"
    "size = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 20\n"
    "while data := sys.stdin.buffer.read(size):\n"
    "    sys.stdout.buffer.write(data); sys.stdout.buffer.flush()\n"
)
# Prints the size and sha256 of everything on stdin, and writes the same to argv[1] if given.
DIGEST = (
    "import hashlib, sys\n"
    "data = sys.stdin.buffer.read()\n"
    "line = f'{len(data)} {hashlib.sha256(data).hexdigest()}'\n"
    "print(line)\n"
    "if len(sys.argv) > 1: open(sys.argv[1], 'w').write(line)\n"
)


def python(code: str, *args: str) -> list[str]:
    return [PY, "-c", code, *args]


def blocks(count: int, size: int = MIB) -> Iterator[bytes]:
    for n in range(count):
        yield bytes([n % 251]) * size


def expected(data: bytes, edit: bytes, finish: bytes) -> str:
    whole = data[: -process.TAIL] + edit + finish
    return f"{len(whole)} {hashlib.sha256(whole).hexdigest()}"


@pytest.mark.parametrize(("count", "size", "piece"), [(5, MIB, MIB), (40, 5000, 777)])
def test_everything_passes_with_the_tail_edited_and_the_last_word_after_it(
    count: int, size: int, piece: int
) -> None:
    seen = []

    def edit(tail: bytes) -> bytes:
        seen.append(tail)
        return tail.replace(b"\x04", b"") + b"EPILOGUE"

    data = b"".join(blocks(count, size))
    done = process.stream_through(
        python(CAT, str(piece)), python(DIGEST), blocks(count, size), edit_tail=edit, finish=b"END"
    )
    assert seen == [data[-process.TAIL :]]  # exactly the last TAIL bytes, once
    assert done.stdout.decode().strip() == expected(data, edit(seen[0]), b"END")


def test_a_short_stream_is_all_tail() -> None:
    done = process.stream_through(
        python(CAT), python(DIGEST), [b"abc", b"def"], edit_tail=bytes.upper, finish=b"!"
    )
    assert done.stdout.decode().split()[0] == "7"
    assert done.stdout.decode().split()[1] == hashlib.sha256(b"ABCDEF!").hexdigest()


def test_a_source_failing_at_its_end_kills_the_consumer_before_the_last_word(
    tmp_path: Path,
) -> None:
    out = tmp_path / "seen"

    def checked_at_the_end() -> Iterator[bytes]:
        yield from blocks(4)
        raise IntegrityError("sha256 mismatch in dump.zst")

    with pytest.raises(IntegrityError, match="dump.zst"):
        process.stream_through(
            python(CAT),
            python(DIGEST, str(out)),
            checked_at_the_end(),
            edit_tail=lambda tail: tail,
            finish=b"COMMIT",
        )
    assert not out.exists()  # it never reached the end of its input


def test_a_failing_producer_is_named_and_the_consumer_never_finishes(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    producer = python("import sys; sys.stdin.buffer.read(100); sys.exit('archive is damaged')")
    with pytest.raises(EngineError, match="archive is damaged"):
        process.stream_through(
            producer, python(DIGEST, str(out)), blocks(8), edit_tail=bytes, finish=b"COMMIT"
        )
    assert not out.exists()


def test_a_failing_consumer_is_named_not_the_producer_it_broke() -> None:
    consumer = python("import sys; sys.stdin.buffer.read(1000); sys.exit('ERROR: row refused')")
    with pytest.raises(EngineError) as caught:
        process.stream_through(python(CAT), consumer, blocks(16), edit_tail=bytes, finish=b"COMMIT")
    assert caught.value.message.endswith("failed: ERROR: row refused")


def test_a_tail_that_cannot_be_edited_stops_everything(tmp_path: Path) -> None:
    out = tmp_path / "seen"

    def refuse(tail: bytes) -> bytes:
        raise EngineError("the script did not end with its COMMIT")

    with pytest.raises(EngineError, match="did not end with its COMMIT"):
        process.stream_through(
            python(CAT), python(DIGEST, str(out)), blocks(2), edit_tail=refuse, finish=b"COMMIT"
        )
    assert not out.exists()


def test_a_producer_that_stops_reading_early_still_drains_the_source() -> None:
    finished = []

    def source() -> Iterator[bytes]:
        yield from blocks(64)
        finished.append(True)

    producer = python("import sys; sys.stdout.write(sys.stdin.read(10))")
    done = process.stream_through(producer, python(DIGEST), source(), edit_tail=bytes, finish=b"!")
    assert finished == [True]  # the source's checks ran before the last word went out
    assert done.stdout.decode().split()[0] == "11"
