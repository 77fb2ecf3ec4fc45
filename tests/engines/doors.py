"""Helpers of the engines' restore-door tests: two CLI people (alice asks, bob approves)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from typing import Any

TOKENS = {"UALICE": "alice-doors-token-" + "a" * 24, "UBOB": "bob-doors-token-" + "b" * 24}
ROLES = {"UALICE": "[approvers]", "UBOB": "[approvers]"}
REQUEST_ID = re.compile(r"rr-\d{8}T\d{4}Z-[0-9a-f]{6}")


def cli_identities() -> dict[str, str]:
    """The settings override that makes alice (operator) and bob (approver) CLI identities."""
    rows = [
        f"{user}: {{name: {user[1:].lower()}, token_sha256: "
        f"{hashlib.sha256(token.encode()).hexdigest()}, roles: {ROLES[user]}}}"
        for user, token in TOKENS.items()
    ]
    return {"KOSMOS__APPROVALS__CLI_IDENTITIES": "{" + ", ".join(rows) + "}"}


def as_person(env: dict[str, str], user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``kosmos-backup ARGV`` as ``user`` (UALICE or UBOB)."""
    who = {"KOSMOS_USER": user, "KOSMOS_USER_TOKEN": TOKENS[user]}
    return subprocess.run(
        ["kosmos-backup", *argv], env=env | who, capture_output=True, text=True, timeout=180
    )


def json_of(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a ``--json`` command printed (its exit was 0)."""
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
