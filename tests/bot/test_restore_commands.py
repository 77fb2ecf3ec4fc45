"""The /restore grammar, the CLI identities and the card's rendering, without services."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.approval_blocks import APPROVE_ACTION, card, reason_of
from bot.cli.approvals import identify
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
from workers.core.approvals import BackupFacts, Verdict, decide, open_request
from workers.core.config import Settings
from workers.core.errors import PermissionDenied, UsageError
from workers.core.restore_plan import RestorePlan

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


def _settings(**identities: str) -> Settings:
    rows = {
        user: {"name": user.lower(), "token_sha256": hashlib.sha256(t.encode()).hexdigest()}
        for user, t in identities.items()
    }
    return Settings.model_validate(
        {"storage": {"url": "file:///x"}, "components": {}, "approvals": {"cli_identities": rows}}
    )


def test_cli_identity_needs_the_persons_own_token() -> None:
    settings = _settings(UBOB="bob-secret-token-0123456789")
    token = "bob-secret-token-0123456789"
    assert identify(settings, {"KOSMOS_USER": "UBOB", "KOSMOS_USER_TOKEN": token}) == "UBOB"
    assert identify(settings, {"KOSMOS_USER": "ubob", "KOSMOS_USER_TOKEN": token}) == "UBOB"
    for env in (
        {"KOSMOS_USER": "UBOB", "KOSMOS_USER_TOKEN": "guess"},
        {"KOSMOS_USER": "UEVE", "KOSMOS_USER_TOKEN": token},
        {"KOSMOS_USER": "UBOB"},
        {},
    ):
        with pytest.raises(PermissionDenied):
            identify(settings, env)


def test_card_shows_the_plan_and_loses_its_buttons_once_decided() -> None:
    plan = RestorePlan(component="postgres", backup_id="postgres-20261124T0200Z-7f3a", target="a")
    facts = BackupFacts(kind="postgres-logical", finished_at=T0 - timedelta(hours=3), size=2048)
    request = open_request(
        plan,
        requester="UALICE",
        reason="<drill>",
        now=T0,
        ttl=timedelta(minutes=30),
        required=1,
        backup=facts,
    )
    pending = json.dumps(card(request, T0, 14400).blocks)
    for shown in ("3h old", "<@UALICE>", "&lt;drill&gt;", "never verified", APPROVE_ACTION):
        assert shown in pending
    denied = decide(
        request,
        user="UBOB",
        verdict=Verdict.DENY,
        holds_approver_role=True,
        now=T0,
        key=b"k",
        ttl=timedelta(minutes=30),
        reason="no",
    ).request
    shown = json.dumps(card(denied, T0, 14400).blocks)
    assert "Denied by <@UBOB>: no" in shown and APPROVE_ACTION not in shown
    expired = json.dumps(card(request, T0 + timedelta(hours=1), 14400).blocks)
    assert "Expired at" in expired and APPROVE_ACTION not in expired
    click = {"state": {"values": {"restore_reason": {"reason": {"value": "  typed  "}}}}}
    assert reason_of(click) == "typed" and reason_of({}) == ""
