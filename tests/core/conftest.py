"""Fixtures for the pure core's tests (no services)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest


@pytest.fixture
def berlin_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local time is Berlin's, not UTC (what the core says must not change)."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
