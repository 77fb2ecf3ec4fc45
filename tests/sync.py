"""Waiting on observable state, and threads whose failures reach pytest."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1
) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Checked(threading.Thread):
    """A thread whose exception (an assert, a timeout) is raised again by :meth:`check`."""

    def __init__(self, target: Callable[..., Any], *args: Any) -> None:
        super().__init__(target=target, args=args, daemon=True)
        self.error: BaseException | None = None
        self.result: Any = None
        self._body = target

    def run(self) -> None:
        """Run the target, keeping its result or its exception."""
        try:
            self.result = self._body(*self._args)  # type: ignore[attr-defined]
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread in check()
            self.error = exc

    def check(self, timeout: float = 30) -> Any:
        """Join; raise what the thread raised, or fail if it is still running."""
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"thread {self.name} still running after {timeout}s")
        if self.error is not None:
            raise self.error
        return self.result
