"""Velero's contract-test fixture: the fake API server with Velero's controller and workloads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engines.case import ContractCase
from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.velero import FakeVelero, platform
from tests.storage.backups import Clock
from workers.context import Context
from workers.core.config import Settings
from workers.engines.velero.options import VeleroRestoreOptions

APPS = "apis/apps/v1"


@pytest.fixture
def velero_contract_case(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> Iterator[ContractCase]:
    """The platform's namespaces backed up through Velero; the restore brings one back."""
    kube = platform(FakeKubernetes().start())
    velero = FakeVelero(kube).start()
    settings = make_settings(
        **{
            "components.kubernetes.kubeconfig": str(kube.kubeconfig(tmp_path / "kubeconfig")),
            "components.kubernetes.keep_last": "1",
        }
    )
    clock = Clock()

    def check_restored(result: Any) -> None:
        assert result.phase == "Completed" and result.namespaces == ("kosmos-agents",)
        assert result.items == result.total_items == 3
        assert set(result.healthy) == {
            "kosmos-agents/deployments/paused",
            "kosmos-agents/deployments/planner",
            "kosmos-agents/deployments/writer",
        }
        planner = kube.get(APPS, "kosmos-agents", "deployments", "planner")
        assert planner is not None and planner["spec"]["replicas"] == 3

    try:
        yield ContractCase(
            ctx=Context(settings, clock=clock),
            clock=clock,
            component="kubernetes",
            restore_options=VeleroRestoreOptions(namespaces="kosmos-agents", health_budget="10s"),
            check_restored=check_restored,
        )
    finally:
        velero.stop()
        kube.stop()
