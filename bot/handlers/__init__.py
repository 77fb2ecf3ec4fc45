"""Handlers: parse, authorize, act, answer; shared by Slack, the console and the CLI.

Each command group has one module (``backup``, ``restore``, ``runbook`` for ``/dr``) with an
``answer(desk, caller, command)`` that returns a reply; front doors only render it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.grammar import parse
from bot.handlers import backup, restore, runbook
from bot.handlers.desk import Caller, Desk
from bot.replies import Reply
from workers.core.errors import PermissionDenied

__all__ = ["Caller", "Desk", "dispatch"]

ANSWERS: dict[str, Callable[[Desk, Caller, Any], Reply]] = {
    "backup": backup.answer,
    "restore": restore.answer,
    "backup.audit": restore.answer,
    "dr": runbook.answer,
}
"""The answering function of each command group (or of one action, which wins)."""


def dispatch(desk: Desk, caller: Caller, command: str, text: str) -> Reply:
    """Parse ``text`` after ``command``, check the caller's role, and answer."""
    parsed = parse(command, text, list(desk.ctx.settings.components))
    try:
        desk.authorizer.check(caller.user, parsed.action)
    except PermissionDenied as exc:
        restore.audit_role_refusal(desk.ctx, caller.user, parsed.action, exc)
        raise
    answer = ANSWERS.get(parsed.action) or ANSWERS[parsed.action.split(".", 1)[0]]
    return answer(desk, caller, parsed)
