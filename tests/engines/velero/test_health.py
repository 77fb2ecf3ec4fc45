"""The status board's look at the Velero component: reach, and settings that cannot work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.fakes.kubernetes import FakeKubernetes
from workers.context import Context
from workers.core.config import Settings
from workers.engines.velero.health import config_problems, unreachable


def test_reachable_then_not(ctx: Context, kube: FakeKubernetes) -> None:
    assert unreachable(ctx, "kubernetes") is None
    port = kube.url.rsplit(":", 1)[1]
    kube.stop()
    found = unreachable(ctx, "kubernetes")
    assert found is not None and f"127.0.0.1:{port} unreachable" in found


def test_a_missing_kubeconfig_is_named(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    ctx = Context(make_settings(**{"components.kubernetes.kubeconfig": str(missing)}))
    found = unreachable(ctx, "kubernetes")
    assert found is not None and str(missing) in found


def test_config_problems(make_settings: Callable[..., Settings]) -> None:
    assert config_problems(make_settings(), "kubernetes") == []
    empty = make_settings(**{"components.kubernetes.namespaces": "[]"})
    assert config_problems(empty, "kubernetes") == [
        ("components.kubernetes.namespaces", "no namespaces: a Velero backup would hold nothing")
    ]
    bad = make_settings(**{"components.kubernetes.namespaces": "[Kosmos_Agents]"})
    [(where, problem)] = config_problems(bad, "kubernetes")
    assert "Kosmos_Agents" in problem
