"""What each kind's contract fixture hands the contract test (tests/engines/test_contract.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.storage.backups import Clock
from workers.context import Context
from workers.core.operations import RestoreOptions


@dataclass
class ContractCase:
    """One kind's world: a source with data, a store, and where a restore may go.

    The fixture ``<kind>_contract_case`` in ``tests/engines/<kind>/contract.py`` builds it:
    settings whose component ``component`` (``keep_last: 1``) reads a real source that the
    fixture filled, on a fresh store, under ``clock`` (moved by hand by the test).
    """

    ctx: Context
    clock: Clock
    component: str
    restore_options: RestoreOptions
    """Where the restore goes: never the live source."""
    check_restored: Callable[[Any], None]
    """Asserts what ``restore`` returned and that the restored data equals the source's."""
