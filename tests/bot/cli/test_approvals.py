"""The CLI's identities for approvals, without services."""

from __future__ import annotations

import hashlib

import pytest

from bot.cli.approvals import identify
from workers.core.config import Settings
from workers.core.errors import PermissionDenied


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
