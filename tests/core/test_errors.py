"""The error tree: what each error tells people, how its hint is spelled, how it exits."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from workers.core.errors import (
    CLI,
    ConfigError,
    ConflictError,
    EngineError,
    IntegrityError,
    KosmosError,
    NotFoundError,
    PermissionDenied,
    RedisUnavailable,
    StorageError,
    StorageUnavailable,
    Suggestion,
    UsageError,
    cli_command,
)


def slash_backup(words: Sequence[str]) -> str:
    """The chat's spelling of a command, as a front door would pass it."""
    return "/backup " + " ".join(words)


def test_the_cli_is_named_kosmos_backup() -> None:
    assert CLI == "kosmos-backup"


def test_a_cli_command_is_the_program_then_its_words() -> None:
    assert cli_command(("list", "postgres")) == "kosmos-backup list postgres"
    assert cli_command(["status"]) == "kosmos-backup status"
    assert cli_command(()) == "kosmos-backup"


def test_a_suggestion_reads_its_advice_then_the_command() -> None:
    hint = Suggestion("list the backups with", ("list", "postgres"))
    assert hint.text() == "list the backups with kosmos-backup list postgres"
    assert hint.text(slash_backup) == "list the backups with /backup list postgres"


def test_a_suggestion_without_advice_says_see() -> None:
    assert Suggestion("", ("status",)).text() == "see: kosmos-backup status"
    assert Suggestion("", ("status",)).text(slash_backup) == "see: /backup status"


def test_a_suggestion_is_frozen() -> None:
    hint = Suggestion("run", ("status",))
    with pytest.raises(AttributeError):
        hint.advice = "other"  # type: ignore[misc]


def test_an_error_reads_as_its_message() -> None:
    error = KosmosError("backup b-1 not found", "check the id")
    assert str(error) == "backup b-1 not found"
    assert error.message == "backup b-1 not found"
    assert error.args == ("backup b-1 not found",)
    assert error.hint == "check the id"
    assert error.suggestion is None


def test_an_error_without_hint_has_an_empty_hint_and_a_bare_line() -> None:
    error = KosmosError("nothing to do")
    assert error.hint == ""
    assert error.suggestion is None
    assert error.hint_for(slash_backup) == ""
    assert error.one_line() == "nothing to do"


def test_one_line_puts_the_hint_in_parentheses() -> None:
    error = KosmosError("backup b-1 not found", "check the id")
    assert error.one_line() == "backup b-1 not found (check the id)"


def test_a_plain_hint_is_the_same_for_every_front_door() -> None:
    error = KosmosError("lock held", "wait a minute")
    assert error.hint_for(slash_backup) == "wait a minute"


def test_see_names_a_command_spelled_as_the_cli_by_default() -> None:
    error = NotFoundError("no backup of postgres", "list them with", see=["list", "postgres"])
    assert error.suggestion == Suggestion("list them with", ("list", "postgres"))
    assert error.hint == "list them with kosmos-backup list postgres"
    assert error.one_line() == "no backup of postgres (list them with kosmos-backup list postgres)"


def test_a_front_door_spells_the_suggested_command_its_own_way() -> None:
    error = NotFoundError("no backup of postgres", "list them with", see=("list", "postgres"))
    assert error.hint_for(slash_backup) == "list them with /backup list postgres"
    assert error.hint_for(cli_command) == "list them with kosmos-backup list postgres"


def test_see_without_advice_hints_see() -> None:
    error = NotFoundError("no such component", see=("components",))
    assert error.hint == "see: kosmos-backup components"
    assert error.hint_for(slash_backup) == "see: /backup components"
    assert error.one_line() == "no such component (see: kosmos-backup components)"


def test_an_empty_see_keeps_the_plain_hint() -> None:
    error = KosmosError("odd", "a plain hint", see=())
    assert error.suggestion is None
    assert error.hint == "a plain hint"


@pytest.mark.parametrize(
    ("kind", "exit_code", "transient"),
    [
        (KosmosError, 1, False),
        (UsageError, 2, False),
        (ConfigError, 2, False),
        (NotFoundError, 1, False),
        (IntegrityError, 1, False),
        (StorageError, 1, False),
        (StorageUnavailable, 1, True),
        (RedisUnavailable, 1, True),
        (EngineError, 1, False),
        (ConflictError, 1, False),
        (PermissionDenied, 1, False),
    ],
)
def test_each_error_exits_and_retries_as_documented(
    kind: type[KosmosError], exit_code: int, transient: bool
) -> None:
    error = kind("it failed")
    assert error.exit_code == exit_code
    assert error.transient is transient
    assert isinstance(error, KosmosError)


def test_an_unreachable_store_is_a_storage_error() -> None:
    assert issubclass(StorageUnavailable, StorageError)
    assert not issubclass(RedisUnavailable, StorageError)
