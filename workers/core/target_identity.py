"""Which server a restore target is: decided by the servers' system identifiers, not spelling.

``host=127.0.0.2``, ``port=05432``, a host list or the machine's own hostname all reach the
same PostgreSQL as ``host=127.0.0.1``; only the server itself can say so. Plan time asks the
live source and the target for ``pg_control_system().system_identifier``, the card shows what
it found, and the worker asks again before it touches anything.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from workers.core.errors import KosmosError
from workers.core.model import Model

MAX_REASON = 200

Found = str | KosmosError
"""What asking one server gave: its system identifier, or why it could not be asked."""


class TargetIdentity(Model):
    """What asking the target's server and the live source gave when the plan was made."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target_id: str | None = Field(default=None, description="the target server's system id")
    source_id: str | None = Field(default=None, description="the live source's system id")
    reason: str = Field(default="", description="why a server could not be asked")

    @classmethod
    def found(cls, *, source: Found, target: Found) -> TargetIdentity:
        """The identity from what asking each server gave."""
        problem = next((f for f in (target, source) if isinstance(f, KosmosError)), None)
        return cls(
            target_id=target if isinstance(target, str) else None,
            source_id=source if isinstance(source, str) else None,
            reason=_one_line(problem.message) if problem is not None else "",
        )

    @property
    def reachable(self) -> bool:
        """Whether the target's server answered."""
        return self.target_id is not None

    @property
    def same_server(self) -> bool | None:
        """Whether target and live source are one server; None when one did not answer."""
        if self.target_id is None or self.source_id is None:
            return None
        return self.target_id == self.source_id

    def label(self) -> str:
        """What was found, for the approval card."""
        if self.target_id is None:
            return f"target unreachable at plan time: {self.reason}"
        if self.source_id is None:
            return f"system id {self.target_id}; the live source did not answer: {self.reason}"
        if self.same_server:
            return f"same server as the live source (system id {self.target_id})"
        return f"other server (system id {self.target_id})"


def _one_line(text: Any) -> str:
    line = str(text).strip().splitlines()[0] if str(text).strip() else "no answer"
    return line if len(line) <= MAX_REASON else line[: MAX_REASON - 1] + "…"
