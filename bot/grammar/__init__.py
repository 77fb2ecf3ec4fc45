"""The one command grammar: chat text -> request models, or a UsageError showing the right form.

Pure: no I/O. Slack, the console and the CLI all parse through :func:`parse`. Each command
group has its own module (``backup``, ``restore``, ``runbook`` for ``/dr``), built on the
shared pieces in ``command``; this module only picks the group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.grammar.backup import BACKUP
from bot.grammar.command import Command, parse_group
from bot.grammar.restore import parse_restore
from bot.grammar.runbook import parse_dr
from workers.core.errors import UsageError

GRAMMAR: dict[str, Callable[[str, Sequence[str]], Command]] = {
    BACKUP.name: lambda text, components: parse_group(BACKUP, text, components),
    "restore": parse_restore,
    "dr": lambda text, _components: parse_dr(text),
}
"""Every command group by its name without the slash."""


def parse(command: str, text: str, components: Sequence[str]) -> Command:
    """Parse ``text`` typed after ``command`` (``/backup``) against the configured components."""
    name = command.strip().lstrip("/").lower()
    group = GRAMMAR.get(name)
    if group is None:
        known = ", ".join(f"/{name}" for name in GRAMMAR)
        raise UsageError(f"unknown command {command.strip()!r}", hint=f"commands: {known}")
    return group(text, components)


def parse_line(line: str, components: Sequence[str]) -> Command:
    """Parse a whole line such as ``/backup run postgres`` (the console's input)."""
    head, _, rest = line.strip().partition(" ")
    if not head:
        raise UsageError("empty command", hint="try: /backup help")
    return parse(head, rest, components)
