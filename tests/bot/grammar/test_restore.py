"""The /restore grammar: every input parses into a request or a usage message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.grammar import parse
from bot.grammar.backup import BackupAudit
from bot.grammar.restore import (
    RestoreApprove,
    RestoreBreakGlass,
    RestoreDeny,
    RestoreRequest,
    RestoreReview,
)
from bot.roles import ACTION_PERMISSIONS
from workers.core.errors import UsageError

COMPONENTS = ["postgres", "minio"]
RID = "rr-20261124T0300Z-a1b2c3"
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "postgres latest -- drill",
            RestoreRequest(component="postgres", ref="latest", reason="drill"),
        ),
        (
            "Postgres postgres-20261124T0300Z-7f3a --target app_r --database app -- it's broken",
            RestoreRequest(
                component="postgres",
                ref="postgres-20261124T0300Z-7f3a",
                target="app_r",
                database="app",
                reason="it's broken",
            ),
        ),
        (
            "postgres latest --to 2026-11-24T02:30Z --in-place \u2014 roll back &amp; see",
            RestoreRequest(
                component="postgres",
                ref="latest",
                in_place=True,
                reason="roll back & see",
                point=datetime(2026, 11, 24, 2, 30, tzinfo=UTC),
            ),
        ),
        (
            "postgres latest --break-glass -- outage",
            RestoreBreakGlass(component="postgres", ref="latest", reason="outage"),
        ),
        (f"approve {RID}", RestoreApprove(request_id=RID)),
        (f"deny {RID} -- wrong one", RestoreDeny(request_id=RID, reason="wrong one")),
        (f"review {RID} -- fine", RestoreReview(request_id=RID, notes="fine")),
    ],
)
def test_restore_commands_parse(text: str, expected: object) -> None:
    assert parse("/restore", text, COMPONENTS) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("postgres latest", "a restore needs a reason"),
        ("postgres latest --", "a restore needs a reason"),
        ("postgres -- why", "say which component and which backup"),
        ("mongo latest -- why", "unknown component 'mongo'"),
        ("postgres minio-20261124T0300Z-7f3a -- why", "is not 'latest' or a backup id of postgres"),
        ("postgres latest --to soon -- why", "--to 'soon' is not a time"),
        ("postgres latest --target -- why", "--target needs a value"),
        ("postgres latest --force -- why", "unknown option '--force'"),
        (f"deny {RID}", "a denial needs a reason"),
        (f"review {RID} --", "a review needs notes"),
        ("approve rr-1", "is not a request id"),
    ],
)
def test_bad_restore_commands_get_usage(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse("/restore", text, COMPONENTS)


@pytest.mark.parametrize(
    ("typed", "database"),
    [
        ("--database -x", "-x"),
        ("--database '--in-place'", "--in-place"),
        ('--database "my db"', "my db"),
        ('--database "it\'s"', "it's"),
        ("--database données", "données"),
        ("--database a/b%c", "a/b%c"),
        ("--database " + "é" * 31 + "x", "é" * 31 + "x"),
    ],
)
def test_restore_takes_any_database_name_postgres_keeps(typed: str, database: str) -> None:
    parsed = parse("/restore", f"postgres latest {typed} -- drill", COMPONENTS)
    assert isinstance(parsed, RestoreRequest) and parsed.database == database


@pytest.mark.parametrize(
    "typed", ["--database " + "é" * 32, "--database ''", "--database 'a\tb'", "--database 'a\nb'"]
)
def test_restore_refuses_a_database_name_postgres_would_not_keep(typed: str) -> None:
    with pytest.raises(UsageError, match="database: .*1 to 63 bytes without control characters"):
        parse("/restore", f"postgres latest {typed} -- x", COMPONENTS)


WORDS = st.sampled_from(
    [
        "postgres",
        "latest",
        "--to",
        "--target",
        "--",
        "\u2014",
        "approve",
        "deny",
        "review",
        RID,
        "--in-place",
        "--break-glass",
        "x",
        "'",
        '"',
        "2026-11-24T03:00Z",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(WORDS, max_size=8).map(" ".join)))
def test_any_restore_text_parses_or_is_a_usage_error(text: str) -> None:
    try:
        parsed = parse("/restore", text, COMPONENTS)
    except UsageError as exc:
        assert exc.message and "Traceback" not in exc.message
        return
    assert parsed.action in ACTION_PERMISSIONS


def test_backup_audit_parses() -> None:
    assert parse("/backup", "audit 5", COMPONENTS) == BackupAudit(limit=5)
    with pytest.raises(UsageError):
        parse("/backup", "audit many", COMPONENTS)
