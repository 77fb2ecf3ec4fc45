"""The secrets engine's DR steps: full recovery's import back, and the drill's scratch import."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.engines.infisical.world import PROJECT
from tests.fakes.infisical import FakeInfisical
from workers.context import Context
from workers.core.errors import ConfigError
from workers.engines.infisical import export, runbook_steps


def test_recovery_imports_every_environment_back_where_it_came_from(
    ctx: Context, infisical: FakeInfisical
) -> None:
    manifest = export.backup(ctx, "secrets")
    infisical.put_secret(PROJECT, "prod", "/", "API_KEY", "overwritten")
    infisical.put_secret(PROJECT, "staging", "/", "API_KEY", "overwritten-too")
    records: list[dict[str, Any]] = []
    outputs = runbook_steps.recover(
        ctx, "secrets", manifest, rotate=False, actor="run-1", record=lambda *a, **k: records
    )
    assert outputs["imported"] == {
        f"{PROJECT}/prod": {"create": 0, "update": 1, "unchanged": 2},
        f"{PROJECT}/staging": {"create": 0, "update": 1, "unchanged": 0},
    }
    assert infisical.value(PROJECT, "prod", "/", "API_KEY") == "api-Vq7-prod"
    assert infisical.value(PROJECT, "staging", "/", "API_KEY") == "api-Wd3-staging"
    assert "rotation" not in outputs


def test_the_drill_imports_into_scratch_and_counts_match(
    build_context: Callable[..., Context], infisical: FakeInfisical
) -> None:
    def scratch(config: dict[str, Any]) -> None:
        config["components"]["secrets"]["drill_environment"] = "dr-scratch"

    ctx = build_context(scratch)
    manifest = export.backup(ctx, "secrets")
    outputs = runbook_steps.drill(ctx, "secrets", manifest)
    assert outputs["target"] == f"{PROJECT}/dr-scratch"
    assert outputs["secrets"] == 3 and outputs["paths"] == 3
    assert infisical.keys(PROJECT, "dr-scratch", "/db") == {"PG_PASSWORD"}
    assert infisical.value(PROJECT, "prod", "/", "API_KEY") == "api-Vq7-prod"


def test_the_drill_without_a_scratch_environment_writes_nothing(
    ctx: Context, infisical: FakeInfisical
) -> None:
    manifest = export.backup(ctx, "secrets")
    before = len(infisical.requests)
    with pytest.raises(ConfigError, match="scratch environment"):
        runbook_steps.drill(ctx, "secrets", manifest)
    assert len(infisical.requests) == before
