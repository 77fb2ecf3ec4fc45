"""The one exception tree of kosmos-backup.

Every error carries a message for people and a hint for the operator::

    KosmosError
    ├── UsageError              bad command input (exit 2)
    ├── ConfigError             bad configuration (exit 2)
    ├── NotFoundError           a backup, component or object that does not exist
    ├── IntegrityError          a checksum mismatch or a malformed manifest (never retried)
    ├── StorageError            the backup store failed
    │   └── StorageUnavailable  the store is unreachable (transient, retried)
    ├── RedisUnavailable        Redis (queues, locks, events, approvals) is unreachable
    ├── EngineError             an external tool (pg_dump, barman, etcdctl) failed
    ├── ConflictError           the operation collides with another (lock held, id taken)
    └── PermissionDenied        a role or approval check refused the operation
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

CLI = "kosmos-backup"


def cli_command(words: Sequence[str]) -> str:
    """A suggested command in the CLI's words: ``kosmos-backup list postgres``."""
    return " ".join((CLI, *words))


@dataclass(frozen=True)
class Suggestion:
    """A hint that names a command to run next, kept apart so each front door spells it.

    ``command`` is in the CLI's words (``("list", "postgres")``); the chat spells the same
    as ``/backup list postgres``. The hint reads ``advice`` followed by the command.
    """

    advice: str
    command: tuple[str, ...]

    def text(self, spell: Callable[[Sequence[str]], str] = cli_command) -> str:
        """The hint with the command spelled by ``spell`` (the CLI's spelling by default)."""
        return f"{self.advice or 'see:'} {spell(self.command)}"


class KosmosError(Exception):
    """Root of every error the product raises on purpose.

    ``see`` names a command worth running next, in the CLI's words; ``hint`` then spells it
    as the CLI does (for logs, the CLI and every reader that does not spell it itself), and
    ``hint_for`` lets a front door spell it its own way.
    """

    exit_code = 1
    transient = False

    def __init__(self, message: str, hint: str = "", *, see: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = Suggestion(hint, tuple(see)) if see else None
        self.hint = self.suggestion.text() if self.suggestion else hint

    def __str__(self) -> str:
        return self.message

    def hint_for(self, spell: Callable[[Sequence[str]], str]) -> str:
        """The hint with its suggested command, if any, spelled by ``spell``."""
        return self.suggestion.text(spell) if self.suggestion else self.hint

    def one_line(self) -> str:
        """The message and hint as one line for a terminal or a chat message."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(KosmosError):
    """The command was malformed; nothing was done."""

    exit_code = 2


class ConfigError(KosmosError):
    """The configuration is invalid; the message names the key."""

    exit_code = 2


class NotFoundError(KosmosError):
    """A named thing does not exist."""


class IntegrityError(KosmosError):
    """Stored data does not match its recorded checksum or shape."""


class StorageError(KosmosError):
    """The backup store refused or failed an operation."""


class StorageUnavailable(StorageError):
    """The backup store could not be reached; worth retrying."""

    transient = True


class RedisUnavailable(KosmosError):
    """Redis, the one coordinator, could not be reached; worth retrying."""

    transient = True


class EngineError(KosmosError):
    """An external backup tool failed."""


class ConflictError(KosmosError):
    """Another operation holds what this one needs."""


class PermissionDenied(KosmosError):
    """A role, approval or two-person check refused the operation."""
