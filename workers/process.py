"""The one place that runs subprocesses: argv lists, streamed output, stderr tail kept."""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from workers.core.errors import EngineError

CHUNK = 1 << 20
STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class Completed:
    """A finished command: its exit status, stdout and the tail of stderr."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr_tail: str


class _StderrTail:
    """Drains a pipe in a thread, keeping only the last lines (never the whole stream)."""

    def __init__(self, pipe: object) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self.thread.start()

    def _drain(self, pipe: object) -> None:
        with pipe:  # type: ignore[attr-defined]
            for raw in iter(pipe.readline, b""):  # type: ignore[attr-defined]
                self.lines.append(raw.decode("utf-8", "replace").rstrip())

    def text(self) -> str:
        self.thread.join(timeout=5)
        return "\n".join(line for line in self.lines if line)


def _describe(argv: Sequence[str]) -> str:
    return os.path.basename(argv[0])


# Lines libpq and the PostgreSQL tools print after the error they explain.
_AFTERWORDS = ("CONTEXT:", "DETAIL:", "HINT:", "LINE ", "QUERY:", "Command was:", "^")


def _failure(argv: Sequence[str], code: int, tail: str) -> EngineError:
    return EngineError(
        f"{_describe(argv)} failed: {_headline(tail, code)}", hint=tail[-1500:] if tail else ""
    )


def _headline(tail: str, code: int) -> str:
    """The error itself: the last line of stderr that is not a CONTEXT/DETAIL/... after it."""
    lines = [line.strip() for line in tail.strip().splitlines() if line.strip()]
    commands = [n for n, line in enumerate(lines) if line.startswith("Command was:")]
    if commands and commands[-1] > 0:
        lines = lines[: commands[-1]]  # pg_restore quotes the statement, over many lines
    if not lines:
        return f"exit status {code}"
    for line in reversed(lines):
        if not line.startswith(_AFTERWORDS):
            return line
    return lines[-1]


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input_bytes: bytes | None = None,
    timeout: float | None = None,
    check: bool = True,
    cwd: str | None = None,
) -> Completed:
    """Run a command to completion; raise EngineError (with stderr's tail) on failure."""
    _check_argv(argv)
    try:
        proc = subprocess.run(
            list(argv),
            input=input_bytes,
            capture_output=True,
            env=_environment(env),
            timeout=timeout,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError:
        raise EngineError(f"{argv[0]} is not installed", hint="install it or fix PATH") from None
    except OSError as exc:
        raise _not_runnable(argv, exc) from None
    except subprocess.TimeoutExpired as exc:
        raise EngineError(f"{_describe(argv)} timed out after {timeout:.0f}s") from exc
    tail = "\n".join(
        proc.stderr.decode("utf-8", "replace").strip().splitlines()[-STDERR_TAIL_LINES:]
    )
    if check and proc.returncode != 0:
        raise _failure(argv, proc.returncode, tail)
    return Completed(tuple(argv), proc.returncode, proc.stdout, tail)


def stream_out(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None
) -> Iterator[bytes]:
    """Yield a command's stdout in chunks; raise EngineError at the end if it failed.

    If the consumer stops early (an upload failed), the process is killed.
    """
    _check_argv(argv)
    proc = _popen(argv, env, cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    tail = _StderrTail(proc.stderr)
    finished = False
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(CHUNK):  # type: ignore[attr-defined]
            yield chunk
        finished = True
    finally:
        if not finished:
            _kill(proc)
        code = proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    if code != 0:
        raise _failure(argv, code, tail.text())


def stream_in(
    argv: Sequence[str],
    chunks: Iterable[bytes],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Completed:
    """Feed chunks to a command's stdin; raise EngineError if it fails.

    If the source raises midway (say, a checksum mismatch), the command is killed
    before it can finish, and the source's error propagates.
    """
    _check_argv(argv)
    proc = _popen(argv, env, cwd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    tail = _StderrTail(proc.stderr)
    source = iter(chunks)
    try:
        # When the command stopped reading, its exit status and stderr say whether that is bad.
        stopped_reading = _feed(proc, source)
    except BaseException:
        _kill(proc)
        proc.wait()
        raise
    code = proc.wait()
    text = tail.text()
    if code != 0:
        raise _failure(argv, code, text)
    if stopped_reading:
        # It succeeded without reading everything. Still read the rest of the source: a
        # restore's sha256 check runs only when its stream is exhausted.
        for _ in source:
            pass
    return Completed(tuple(argv), code, b"", text)


TAIL = 64 << 10
"""Bytes of the producer's output that ``stream_through`` holds back for ``edit_tail``."""


def stream_through(
    producer: Sequence[str],
    consumer: Sequence[str],
    chunks: Iterable[bytes],
    *,
    edit_tail: Callable[[bytes], bytes],
    finish: bytes,
    env: Mapping[str, str] | None = None,
) -> Completed:
    """Feed chunks to ``producer`` and its output to ``consumer``; the consumer's stdout back.

    The producer's last ``TAIL`` bytes pass through ``edit_tail`` on their way. ``finish``
    is written last, and only once the source ran out without an error and the producer
    succeeded: a restore's COMMIT waits for the stream's sha256. On any failure the
    consumer is killed first, so it never sees ``finish``, then the producer.
    """
    _check_argv(producer)
    _check_argv(consumer)
    first = _popen(producer, env, None, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        second = _popen(consumer, env, None, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    except BaseException:
        _kill(first)
        first.wait()
        raise
    tails = (_StderrTail(first.stderr), _StderrTail(second.stderr))
    relay = _Relay(first, second, edit_tail)
    output = _Collect(second.stdout)
    source = iter(chunks)
    try:
        stopped_reading = _feed(first, source)
        code = first.wait()
        relay.thread.join()
        if second.poll() not in (None, 0) or isinstance(relay.error, BrokenPipeError):
            raise _failure(consumer, second.wait(), tails[1].text())
        if relay.error is not None:
            raise relay.error
        if code != 0:
            raise _failure(producer, code, tails[0].text())
        if stopped_reading:
            for _ in source:  # the source's own checks run when it is exhausted
                pass
        assert second.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # it failed: its status says how
            second.stdin.write(finish)
        with contextlib.suppress(OSError):
            second.stdin.close()
    except BaseException:
        _kill(second)
        _kill(first)
        first.wait()
        second.wait()
        raise
    code = second.wait()
    if code != 0:
        raise _failure(consumer, code, tails[1].text())
    return Completed(tuple(consumer), code, output.result(), tails[1].text())


def _feed(proc: subprocess.Popen[bytes], chunks: Iterator[bytes]) -> bool:
    """Write chunks to a command's stdin and close it; True when it stopped reading early."""
    assert proc.stdin is not None
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
        proc.stdin.close()
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        return True
    return False


class _Relay:
    """Copies one command's stdout to another's stdin in a thread, holding back the tail."""

    def __init__(
        self,
        source: subprocess.Popen[bytes],
        sink: subprocess.Popen[bytes],
        edit_tail: Callable[[bytes], bytes],
    ) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(source.stdout, sink.stdin, edit_tail), daemon=True
        )
        self.thread.start()

    def _run(self, out: IO[bytes], into: IO[bytes], edit_tail: Callable[[bytes], bytes]) -> None:
        held = b""
        try:
            with out:
                while chunk := out.read1(CHUNK):  # type: ignore[attr-defined]
                    if len(chunk) >= TAIL:
                        into.write(held)
                        into.write(memoryview(chunk)[:-TAIL])
                        held = chunk[-TAIL:]
                    else:
                        held += chunk
                        if len(held) > TAIL:
                            into.write(held[:-TAIL])
                            held = held[-TAIL:]
            into.write(edit_tail(held))
            into.flush()
        except BaseException as exc:  # handed to the feeding thread
            self.error = exc


class _Collect:
    """Reads a pipe to its end in a thread."""

    def __init__(self, pipe: IO[bytes] | None) -> None:
        self.parts: list[bytes] = []
        self.thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self.thread.start()

    def _run(self, pipe: IO[bytes]) -> None:
        with pipe:
            while part := pipe.read1(CHUNK):  # type: ignore[attr-defined]
                self.parts.append(part)

    def result(self) -> bytes:
        self.thread.join()
        return b"".join(self.parts)


def _popen(
    argv: Sequence[str], env: Mapping[str, str] | None, cwd: str | None, *, stdin: int, stdout: int
) -> subprocess.Popen[bytes]:
    try:
        proc = subprocess.Popen(
            list(argv),
            env=_environment(env),
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
    except FileNotFoundError:
        raise EngineError(f"{argv[0]} is not installed", hint="install it or fix PATH") from None
    except OSError as exc:
        raise _not_runnable(argv, exc) from None
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            _widen(pipe.fileno())
    return proc


def _widen(fd: int) -> None:
    """A 1 MiB pipe instead of 64 KiB: a dump streams through in 1 MiB reads, not 64 KiB
    ones, and the tool waits on us less often. Only a speed-up: refused is fine."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, CHUNK)


def _not_runnable(argv: Sequence[str], exc: OSError) -> EngineError:
    # Not executable, a bad cwd, too many open files: a failed tool, never a traceback.
    return EngineError(f"cannot run {_describe(argv)}: {exc.strerror or exc}")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)


def _environment(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    if extra is None:
        return None
    return {**os.environ, **extra}


def _check_argv(argv: Sequence[str]) -> None:
    if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
        raise TypeError("subprocess commands are argv lists of strings, never a shell string")


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: IO[bytes] | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a long-running child (a worker beside the console); its output goes to ``log``.

    ``new_session``: the child outlives its parent's terminal (a Ctrl-C there never reaches it).
    """
    _check_argv(argv)
    out: IO[bytes] | int = log if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            list(argv),
            env=_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=new_session,
        )
    except FileNotFoundError:
        raise EngineError(f"{argv[0]} is not installed", hint="install it or fix PATH") from None
    except OSError as exc:
        raise _not_runnable(argv, exc) from None


def stop(child: subprocess.Popen[bytes], grace: float) -> int:
    """End a spawned child: SIGTERM, then SIGKILL after ``grace`` seconds; its exit status."""
    if child.poll() is None:
        child.terminate()
        try:
            return child.wait(grace)
        except subprocess.TimeoutExpired:
            child.kill()
    return child.wait()
