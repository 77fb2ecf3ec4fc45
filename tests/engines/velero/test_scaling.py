"""The consumers' scale steps and the health probe, against the fake API server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.kubernetes import FakeKubernetes
from workers.core.errors import EngineError
from workers.engines.velero import scaling
from workers.engines.velero.cluster import Cluster, api_client

APPS = "apis/apps/v1"


@pytest.fixture
def cluster(kubeconfig: Path) -> Iterator[Cluster]:
    connected = Cluster(api_client(str(kubeconfig)), "velero")
    yield connected
    connected.close()


def replicas(kube: FakeKubernetes, namespace: str, plural: str, name: str) -> int:
    found = kube.get(APPS, namespace, plural, name)
    assert found is not None
    return int(found["spec"]["replicas"])


def test_scale_down_then_up_restores_the_exact_counts(
    kube: FakeKubernetes, cluster: Cluster
) -> None:
    recorded = scaling.scale_down(cluster, ["kosmos-agents", "kosmos-data"], "run-1")
    assert recorded == {
        "kosmos-agents/deployments/paused": 0,
        "kosmos-agents/deployments/planner": 3,
        "kosmos-agents/deployments/writer": 1,
        "kosmos-data/statefulsets/minio": 2,
        "kosmos-data/statefulsets/postgres": 1,
    }
    for key in recorded:
        namespace, plural, name = key.split("/")
        assert replicas(kube, namespace, plural, name) == 0
    assert replicas(kube, "kosmos-system", "deployments", "ingress") == 2  # not asked
    scaling.scale_up(cluster, recorded)
    for key, count in recorded.items():
        namespace, plural, name = key.split("/")
        assert replicas(kube, namespace, plural, name) == count  # 3 stays 3, 0 stays 0
        annotations = kube.get(APPS, namespace, plural, name)["metadata"].get("annotations")  # type: ignore[index]
        assert not (annotations or {}).get(scaling.SCALED_BY)


def test_a_retried_scale_down_keeps_the_counts_of_its_first_attempt(
    kube: FakeKubernetes, cluster: Cluster
) -> None:
    first = scaling.scale_down(cluster, ["kosmos-agents"], "run-1")
    again = scaling.scale_down(cluster, ["kosmos-agents"], "run-1")  # all at 0 by now
    assert again == first and again["kosmos-agents/deployments/planner"] == 3
    # Another run sees the zeros as they are: its record is its own.
    assert (
        scaling.scale_down(cluster, ["kosmos-agents"], "run-2")["kosmos-agents/deployments/planner"]
        == 0
    )


def test_health_probe_waits_for_readiness(kube: FakeKubernetes, cluster: Cluster) -> None:
    kube.ready_delay = 0.4
    recorded = scaling.scale_down(cluster, ["kosmos-agents"], "run-1")
    scaling.scale_up(cluster, recorded)
    assert scaling.not_ready(cluster.workloads("kosmos-agents"))  # not yet
    ready = scaling.wait_healthy(cluster, ["kosmos-agents"], 10, poll=0.1)
    assert {w.name: w.ready for w in ready} == {"paused": 0, "planner": 3, "writer": 1}


def test_health_probe_times_out_naming_what_is_not_ready(
    kube: FakeKubernetes, cluster: Cluster
) -> None:
    kube.never_ready.add("writer")
    recorded = scaling.scale_down(cluster, ["kosmos-agents"], "run-1")
    scaling.scale_up(cluster, recorded)
    with pytest.raises(EngineError) as caught:
        scaling.wait_healthy(cluster, ["kosmos-agents", "kosmos-data"], 0.5, poll=0.1)
    assert "kosmos-agents/writer 0/1 ready" in caught.value.message
    assert "planner" not in caught.value.message and "minio" not in caught.value.message


def test_forbidden_scale_names_the_missing_verb(kube: FakeKubernetes, cluster: Cluster) -> None:
    kube.forbidden.add(("patch", "deployments/scale"))
    with pytest.raises(EngineError) as caught:
        scaling.scale_down(cluster, ["kosmos-agents"], "run-1")
    message = caught.value.message
    assert "forbids patch on deployments/scale" in message and "kosmos-agents" in message
    assert 'cannot patch resource "deployments/scale"' in message
    assert "helm/kosmos-backup" in (caught.value.hint or "")
    assert replicas(kube, "kosmos-agents", "deployments", "planner") == 3


def test_scale_up_refuses_when_a_recorded_workload_is_gone(
    kube: FakeKubernetes, cluster: Cluster
) -> None:
    recorded = scaling.scale_down(cluster, ["kosmos-agents"], "run-1")
    kube.remove((APPS, "kosmos-agents", "deployments", "writer"))
    with pytest.raises(EngineError) as caught:
        scaling.scale_up(cluster, recorded)
    assert "kosmos-agents/deployments/writer" in caught.value.message
    assert replicas(kube, "kosmos-agents", "deployments", "planner") == 0  # nothing half done
