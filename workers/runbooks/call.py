"""What a runbook ``job`` step's operation is: a function of a Call, and when it can run."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workers.context import Context
from workers.core.ports import Progress

if TYPE_CHECKING:  # an engine names its operations without loading the runbook models
    from workers.core.runbook_run import RunState


@dataclass(frozen=True)
class Call:
    """What an operation gets: the context, the run, its step and the resolved params."""

    ctx: Context
    run: RunState
    step_id: str
    operation: str
    params: dict[str, Any]
    progress: Progress

    def text(self, name: str, default: str | None = None) -> str | None:
        """A parameter as text; empty strings count as not given."""
        value = self.params.get(name, default)
        return None if value in (None, "") else str(value)

    def flag(self, name: str) -> bool:
        """A parameter as a yes/no (``1``, ``true``, ``yes`` say yes)."""
        return str(self.params.get(name, "")).lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Operation:
    """One automatable operation."""

    run: Callable[[Call], dict[str, Any]]
    safe_to_repeat: bool
    available: Callable[[Context], bool] = lambda ctx: True
    base_backup: bool = False
    """Restores a base backup into a new instance: ``latest`` means the newest base backup."""
    queue: Callable[[Context, str], str] | None = None
    """The queue the step must run on, given the component (else the component's own)."""


def component_of_kind(ctx: Context, kind: str, named: str | None = None) -> str | None:
    """The component to act on: the named one, else the first configured of ``kind``."""
    if named:
        component = ctx.settings.components.get(named)
        return named if component is not None and component.kind == kind else None
    return next((n for n, c in ctx.settings.components.items() if c.kind == kind), None)


def has_module(module: str, attribute: str) -> bool:
    """Whether ``module`` offers ``attribute``, without importing it just to look.

    Asked on every /dr start: an already imported module answers exactly; otherwise its
    presence counts (importing barman just to look would cost a chat answer a second).
    """
    loaded = sys.modules.get(module)
    if loaded is not None:
        return hasattr(loaded, attribute)
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False
