"""The console as a person uses it: ``kosmos-backup bot --console`` fed keystrokes on stdin.

Every wait is on the console's own output (a line matching a pattern), never a sleep.
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from types import TracebackType

from tests.conftest import EXAMPLE_CONFIG


class ConsoleSession:
    """One console process; ``type`` sends a line, ``expect`` waits for an answer."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            ["kosmos-backup", "--config", str(EXAMPLE_CONFIG), "bot", "--console", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**env, "PYTHONUNBUFFERED": "1"},
            text=True,
        )
        self.transcript: list[str] = []
        self.errors: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_errors, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        self.errors += self.proc.stderr

    def type(self, line: str) -> None:
        """Type one line and press Enter."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, pattern: str, timeout: float = 120.0) -> re.Match[str]:
        """The first line from now on that matches ``pattern``."""
        wanted = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(0.0, left))
            except queue.Empty:
                raise AssertionError(self._missing(pattern, "timed out")) from None
            if line is None:
                raise AssertionError(self._missing(pattern, "the console ended"))
            self.transcript.append(line)
            found = wanted.search(line)
            if found:
                return found

    def _missing(self, pattern: str, why: str) -> str:
        tail = "\n".join(self.transcript[-30:])
        return f"{why} waiting for {pattern!r}; the console said:\n{tail}"

    def quit(self) -> tuple[str, str]:
        """Type /quit; the rest of stdout, and all of stderr, once the console ended."""
        self.type("/quit")
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        for reader in self._readers:
            reader.join(timeout=10)
        rest = []
        while (line := self._lines.get(timeout=10)) is not None:
            rest.append(line)
        self.transcript += rest
        return "\n".join(rest), "".join(self.errors)

    def __enter__(self) -> ConsoleSession:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
