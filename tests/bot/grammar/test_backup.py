"""The command grammar: every input parses into a model or a usage message, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.grammar import parse, parse_line
from bot.grammar.backup import BACKUP, BackupHelp, BackupList, BackupRun, BackupStatus, BackupVerify
from bot.grammar.command import Command, chat_command
from workers.core.errors import NotFoundError, UsageError

COMPONENTS = ["postgres", "minio", "etcd", "kubernetes", "secrets"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", BackupHelp()),
        ("help", BackupHelp()),
        ("help run", BackupHelp(topic="run")),
        ("status", BackupStatus()),
        ("STATUS Postgres", BackupStatus(component="postgres")),
        ("run postgres", BackupRun(component="postgres")),
        ("run postgres --base", BackupRun(component="postgres", base=True)),
        ("run postgres \u2014base", BackupRun(component="postgres", base=True)),
        ("list etcd", BackupList(component="etcd")),
        ("list etcd --limit 3", BackupList(component="etcd", limit=3)),
        ("list etcd --limit=200", BackupList(component="etcd", limit=200)),
        ("verify minio", BackupVerify(component="minio")),
        ("verify minio latest --deep", BackupVerify(component="minio", deep=True)),
        (
            "verify postgres postgres-20261124T0300Z-7f3a",
            BackupVerify(component="postgres", ref="postgres-20261124T0300Z-7f3a"),
        ),
        ("  run   'postgres'  ", BackupRun(component="postgres")),
    ],
)
def test_valid_commands_parse_into_their_models(text: str, expected: Command) -> None:
    assert parse("/backup", text, COMPONENTS) == expected


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("bogus", "unknown subcommand 'bogus' for /backup", "/backup run <component>"),
        ("run", "missing <component>", "valid components: postgres, minio, etcd"),
        ("run mongodb", "unknown component 'mongodb'", "valid components: postgres, minio"),
        ("run postgres --fast", "unknown option '--fast'", "usage: /backup run <component>"),
        ("run postgres --base=yes", "--base takes no value", "usage: /backup run"),
        ("list etcd --limit", "--limit needs a whole number, got nothing", "usage: /backup list"),
        ("list etcd --limit ten", "--limit needs a whole number, got 'ten'", "[--limit N]"),
        ("list etcd --limit 0", "limit: input should be greater than or equal to 1", "usage"),
        ("list etcd --limit 999", "limit: input should be less than or equal to 200", "usage"),
        ("status postgres etcd", "unexpected argument 'etcd'", "usage: /backup status"),
        ("verify postgres etcd-20261124T0300Z-7f3a", "is not 'latest' or a backup id", "postgres-"),
        ('run "postgres', "cannot read the command: No closing quotation", "/backup status"),
        ("x" * 1001, "command text is too long", ""),
    ],
)
def test_invalid_commands_name_the_problem_and_show_the_right_form(
    text: str, message: str, hint: str
) -> None:
    with pytest.raises(UsageError) as caught:
        parse("/backup", text, COMPONENTS)
    assert message in caught.value.message
    assert hint in caught.value.hint


def test_unknown_command_group_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown command '/restoree'") as caught:
        parse("/restoree", "postgres", COMPONENTS)
    assert "/backup" in caught.value.hint


def test_parse_line_splits_the_command_from_its_text() -> None:
    assert parse_line("/backup run etcd", COMPONENTS) == BackupRun(component="etcd")
    with pytest.raises(UsageError, match="empty command"):
        parse_line("   ", COMPONENTS)


def test_every_verb_has_a_usage_line_starting_with_its_command() -> None:
    for verb in BACKUP.verbs:
        assert verb.usage.startswith(f"/backup {verb.name}")
        assert verb.model.action == f"backup.{verb.name}"


def test_slack_escapes_and_smart_quotes_are_undone() -> None:
    assert parse("/backup", "run \u201cpostgres\u201d", COMPONENTS) == BackupRun(
        component="postgres"
    )
    with pytest.raises(UsageError, match="unknown component '<@U123>'"):
        parse("/backup", "run &lt;@U123&gt;", COMPONENTS)


_WORDS = st.sampled_from(
    [
        "status",
        "run",
        "list",
        "verify",
        "help",
        "latest",
        "--base",
        "--deep",
        "--limit",
        "--limit=5",
        "5",
        "postgres",
        "etcd",
        "nope",
        "postgres-20261124T0300Z-7f3a",
        '"',
        "'",
        "\u2014deep",
        "-",
        "--",
        "&lt;",
        "\\",
    ]
)
_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(_WORDS, max_size=6).map(" ".join),
    st.lists(st.one_of(_WORDS, st.text(max_size=12)), max_size=6).map(" ".join),
)


@settings(max_examples=600, deadline=None)
@given(text=_TEXT)
def test_any_text_parses_or_gives_a_usage_message(text: str) -> None:
    try:
        command = parse("/backup", text, COMPONENTS)
    except UsageError as exc:
        assert exc.message
        assert "Traceback" not in exc.message + exc.hint
        return
    assert isinstance(command, Command)
    component = getattr(command, "component", None)
    assert component is None or component in COMPONENTS


def test_a_suggested_command_is_spelled_by_each_front_door() -> None:
    assert chat_command(("list", "postgres")) == "/backup list postgres"
    assert chat_command(("backup", "postgres", "--base")) == "/backup run postgres --base"
    assert chat_command(("dr", "resume", "dr-20261124T030000Z-7f3a")) == (
        "/dr resume dr-20261124T030000Z-7f3a"
    )
    assert chat_command(("ops", "op-1")) == "kosmos-backup ops op-1 (in a shell)"
    error = NotFoundError("postgres: no good backup yet", hint="run:", see=("backup", "postgres"))
    assert error.hint == "run: kosmos-backup backup postgres"  # the CLI, logs, old readers
    assert error.hint_for(chat_command) == "run: /backup run postgres"
    assert NotFoundError("gone", see=("list", "etcd")).hint == "see: kosmos-backup list etcd"
    plain = NotFoundError("gone", hint="ask the platform team")
    assert plain.hint_for(chat_command) == plain.hint == "ask the platform team"
