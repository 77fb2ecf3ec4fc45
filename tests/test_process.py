"""The one subprocess runner, against real child processes."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workers import process
from workers.core.errors import EngineError, IntegrityError

PY = sys.executable
MIB = 1 << 20


def python(code: str, *args: str) -> list[str]:
    return [PY, "-c", code, *args]


def test_run_returns_output() -> None:
    done = process.run(python("import sys; print('hello'); print('note', file=sys.stderr)"))
    assert done.returncode == 0
    assert done.stdout == b"hello\n"
    assert done.stderr_tail == "note"
    assert done.argv[0] == PY


def test_run_passes_input_env_and_cwd(tmp_path: Path) -> None:
    code = "import os, sys; print(os.environ['KOSMOS_X'], os.getcwd(), sys.stdin.read())"
    done = process.run(python(code), env={"KOSMOS_X": "42"}, input_bytes=b"in", cwd=str(tmp_path))
    assert done.stdout.decode().split() == ["42", str(tmp_path), "in"]


def test_failure_is_an_engine_error_with_the_tail_of_stderr() -> None:
    code = "import sys\nfor n in range(100): print(f'line {n}', file=sys.stderr)\nsys.exit(3)"
    with pytest.raises(EngineError) as caught:
        process.run(python(code))
    error = caught.value
    assert error.message == f"{os.path.basename(PY)} failed: line 99"
    assert "line 99" in error.hint and "line 80" in error.hint
    assert "line 79" not in error.hint  # only the last 20 lines are kept
    quiet = process.run(python("import sys; sys.exit(4)"), check=False)
    assert quiet.returncode == 4


def failure_of(*lines: str) -> EngineError:
    """The error of a command that printed ``lines`` on stderr and exited 1."""
    code = f"import sys\nprint({chr(10).join(lines)!r}, file=sys.stderr)\nsys.exit(1)"
    with pytest.raises(EngineError) as caught:
        process.run(python(code))
    return caught.value


def test_the_message_names_the_error_not_the_context_printed_after_it() -> None:
    # pg_restore's own words, from a row its CHECK refused
    error = failure_of(
        'pg_restore: error: COPY failed for table "probe": ERROR:  new row for relation '
        '"probe" violates check constraint "probe_check"',
        "DETAIL:  Failing row contains (1).",
        'CONTEXT:  COPY probe, line 1: "1"',
    )
    assert error.message.endswith('violates check constraint "probe_check"')
    assert "CONTEXT:  COPY probe" in error.hint
    assert failure_of("CONTEXT:  x").message.endswith("failed: CONTEXT:  x")


def test_a_statement_quoted_over_many_lines_after_the_error_is_not_the_headline() -> None:
    error = failure_of(
        'pg_restore: error: could not execute query: ERROR:  relation "t" already exists',
        "Command was: CREATE TABLE public.t (",
        "    id integer NOT NULL",
        ");",
    )
    assert error.message.endswith('relation "t" already exists')
    assert "CREATE TABLE public.t" in error.hint


def test_silent_failure_names_the_exit_status() -> None:
    with pytest.raises(EngineError, match="exit status 7"):
        process.run(python("import sys; sys.exit(7)"))


def test_missing_and_unrunnable_programs(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="not installed"):
        process.run(["kosmos-no-such-tool-x"])
    with pytest.raises(EngineError, match="not installed"):
        list(process.stream_out(["kosmos-no-such-tool-x"]))
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(EngineError, match="not-executable"):
        process.run([str(script)])


def test_timeout_is_an_engine_error() -> None:
    started = time.monotonic()
    with pytest.raises(EngineError, match="timed out"):
        process.run(python("import time; time.sleep(30)"), timeout=0.5)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("argv", ["echo hi", [], ["echo", 1], b"echo"])
def test_shell_strings_are_refused(argv: object) -> None:
    with pytest.raises(TypeError, match="argv"):
        process.run(argv)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="argv"):
        list(process.stream_out(argv))  # type: ignore[arg-type]


def test_stream_out_yields_everything_in_bounded_chunks() -> None:
    code = "import sys\nfor n in range(40): sys.stdout.buffer.write(bytes([n]) * 262144)"
    chunks = list(process.stream_out(python(code)))
    data = b"".join(chunks)
    assert len(data) == 10 * MIB
    assert data == b"".join(bytes([n]) * 262144 for n in range(40))
    assert max(len(c) for c in chunks) <= process.CHUNK


def test_stream_out_failure_is_raised_after_the_output() -> None:
    code = "import sys; sys.stdout.write('partial'); sys.stdout.flush(); sys.exit('dump broke')"
    received = []
    with pytest.raises(EngineError, match="dump broke"):
        for chunk in process.stream_out(python(code)):
            received.append(chunk)
    assert b"".join(received) == b"partial"


def test_stream_out_kills_the_command_when_the_consumer_stops(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = (
        "import os, sys\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "while True: sys.stdout.buffer.write(b'x' * 65536)"
    )
    stream = process.stream_out(python(code))
    assert next(stream)
    stream.close()  # type: ignore[attr-defined]
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


def hashing_sink(out: Path) -> list[str]:
    code = (
        "import hashlib, sys\n"
        "digest = hashlib.sha256()\n"
        "while block := sys.stdin.buffer.read(65536): digest.update(block)\n"
        "open(sys.argv[1], 'w').write(digest.hexdigest())"
    )
    return python(code, str(out))


def blocks(count: int) -> Iterator[bytes]:
    for n in range(count):
        yield bytes([n]) * MIB


def test_stream_in_feeds_the_command(tmp_path: Path) -> None:
    out = tmp_path / "digest"
    done = process.stream_in(hashing_sink(out), blocks(12))
    assert done.returncode == 0
    assert out.read_text() == hashlib.sha256(b"".join(blocks(12))).hexdigest()


def test_stream_in_failure_is_an_engine_error() -> None:
    code = "import sys; sys.stdin.buffer.read(10); sys.exit('restore refused the input')"
    with pytest.raises(EngineError, match="restore refused the input"):
        process.stream_in(python(code), blocks(8))


def test_a_failing_source_kills_the_command_and_keeps_its_error(tmp_path: Path) -> None:
    out = tmp_path / "digest"

    def damaged() -> Iterator[bytes]:
        yield from blocks(3)
        raise IntegrityError("checksum mismatch in object dump.zst")

    with pytest.raises(IntegrityError, match="dump.zst"):
        process.stream_in(hashing_sink(out), damaged())
    assert not out.exists()  # the command never saw the end of its input


def test_a_command_that_stops_reading_early_still_drains_the_source() -> None:
    finished = []

    def source() -> Iterator[bytes]:
        yield from blocks(64)
        finished.append(True)

    process.stream_in(python("import sys; sys.stdin.buffer.read(10)"), source())
    # A restore's checksum stage sits in the source: it must run to its end.
    assert finished == [True]
