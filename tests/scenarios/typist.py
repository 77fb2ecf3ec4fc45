"""A person at a terminal: a ``kosmos-backup`` process fed real lines on stdin, read as it prints.

Tests synchronise on what the program prints (``expect``), never on sleeps.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The machine's environment with no kosmos or Slack settings, HOME at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
    env.update({"HOME": str(home), "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    env.pop("XDG_STATE_HOME", None)
    env.update(extra)
    return env


class Typist:
    """Types lines into a process and waits for what it prints."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.errors: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], out: bool) -> None:
        for line in stream:
            if out:
                self.lines.put(line.rstrip("\n"))
            else:
                self.errors.append(line.rstrip("\n"))
        if out:
            self.lines.put(None)

    @property
    def out(self) -> str:
        """Everything printed on stdout so far."""
        return "\n".join(self.seen)

    @property
    def err(self) -> str:
        """Everything printed on stderr so far."""
        return "\n".join(self.errors)

    def type(self, line: str) -> None:
        """Send one line, as if typed and Enter pressed."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """Wait for a stdout line matching ``pattern``; fail with what was printed."""
        wanted = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                line = ""
                if left <= 0:
                    break
            if line is None:
                break  # the program ended
            if line:
                self.seen.append(line)
                found = wanted.search(line)
                if found:
                    return found
        raise AssertionError(
            f"no line matching {pattern!r}\n--- stdout ---\n{self.out}\n--- stderr ---\n{self.err}"
        )

    def quit(self, timeout: float = 90.0) -> int:
        """Type /quit, close stdin and wait for the program to end; its exit status."""
        if self.proc.poll() is None:
            self.type("/quit")
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        while not self.lines.empty():
            line = self.lines.get()
            if line:
                self.seen.append(line)
        return code
