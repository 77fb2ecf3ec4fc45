"""The secrets engine's face to the rest: config problems, reachability, recovery's rotate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.engines.infisical.world import PROJECT
from tests.fakes.infisical import FakeInfisical
from tests.services import free_port
from workers.context import Context
from workers.engines.infisical import export, runbook_steps
from workers.engines.infisical.engine import ENGINE


def test_config_problems_name_what_cannot_work(build_context: Callable[..., Context]) -> None:
    def broken(config: dict[str, Any]) -> None:
        config["encryption"] = {}
        config["components"]["secrets"]["projects"] = []

    settings = build_context(broken).settings
    found = dict(ENGINE.config_problems(settings, "secrets"))
    assert set(found) == {"encryption.recipients", "components.secrets.projects"}
    assert ENGINE.config_problems(build_context().settings, "secrets") == []


def test_reachability_is_a_connect_to_the_api(
    build_context: Callable[..., Context], infisical: FakeInfisical
) -> None:
    assert ENGINE.unreachable(build_context(), "secrets") is None
    port = free_port()

    def elsewhere(config: dict[str, Any]) -> None:
        config["components"]["secrets"]["api_url"] = f"http://127.0.0.1:{port}"

    said = ENGINE.unreachable(build_context(elsewhere), "secrets")
    assert said is not None and said.startswith(f"Infisical unreachable at 127.0.0.1:{port}")


def test_recovery_after_an_incident_also_rotates(ctx: Context, infisical: FakeInfisical) -> None:
    manifest = export.backup(ctx, "secrets")
    records: list[tuple[Any, ...]] = []
    outputs = runbook_steps.recover(
        ctx,
        "secrets",
        manifest,
        rotate=True,
        actor="run-1",
        record=lambda *args, **kwargs: records.append(args),
    )
    # Nothing is marked rotatable here: every secret is a manual step, none is audited.
    assert outputs["rotation"]["rotated"] == [] and len(outputs["rotation"]["manual"]) == 4
    assert outputs["summary"] == "rotated 0 secrets; 4 need a manual rotation"
    assert records == []
    assert f"{PROJECT}/prod" in outputs["imported"]
