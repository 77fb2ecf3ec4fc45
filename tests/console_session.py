"""A console driven as a person drives it: lines typed on its stdin, its stdout read back.

:class:`Session` starts a ``kosmos-backup`` console command (``up``, ``bot --console``) with
pipes, reads its output in a thread, and waits for what it prints (``expect``, a regular
expression with a timeout) the way ``expect(1)`` does: it synchronises on output, never on
sleeps.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path
from typing import IO


class Session:
    """One console process: ``send`` a line, ``expect`` what it prints after it."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = open(log, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.lines: list[str] = []
        self.mark = 0
        self._changed = threading.Condition()
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def send(self, line: str) -> None:
        """Type one line; later ``expect`` calls look at what is printed from now on."""
        with self._changed:
            self.mark = len(self.lines)
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first line since the last ``send`` that matches; AssertionError after timeout."""
        found = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[self.mark :]:
                    match = found.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    shown = "\n".join(self.lines[self.mark :][-40:])
                    raise AssertionError(f"no line matched {pattern!r} in {timeout}s:\n{shown}")
                self._changed.wait(left)

    def output(self) -> str:
        """Everything printed so far."""
        with self._changed:
            return "\n".join(self.lines)

    def close(self, timeout: float = 60.0) -> int:
        """Type /quit, wait for the process to end, return its exit code."""
        if self.proc.poll() is None:
            try:
                self.send("/quit")
                self.proc.wait(timeout)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        self.log.close()
        return self.proc.returncode
