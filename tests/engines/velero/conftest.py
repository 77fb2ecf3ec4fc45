"""A Kubernetes API server with Velero's controller, and a context that talks to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.velero import FakeVelero
from workers.context import Context
from workers.core.config import Settings

NAMESPACES = ("kosmos-agents", "kosmos-data", "kosmos-system")


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """The fake API server, with the platform's workloads."""
    fake = FakeKubernetes().start()
    fake.add_deployment("kosmos-agents", "planner", replicas=3)
    fake.add_deployment("kosmos-agents", "writer", replicas=1)
    fake.add_deployment("kosmos-agents", "paused", replicas=0)
    fake.add_workload("statefulsets", "kosmos-data", "postgres", replicas=1)
    fake.add_workload("statefulsets", "kosmos-data", "minio", replicas=2)
    fake.add_deployment("kosmos-system", "ingress", replicas=2)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def velero(kube: FakeKubernetes) -> Iterator[FakeVelero]:
    """Velero's controller, moving phases along."""
    controller = FakeVelero(kube).start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def kubeconfig(kube: FakeKubernetes, tmp_path: Path) -> Path:
    """A kubeconfig pointing the real client at the fake."""
    return kube.kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def ctx(make_settings: Callable[..., Settings], kubeconfig: Path) -> Context:
    """A context on a local store whose ``kubernetes`` component talks to the fake."""
    return Context(make_settings(**{"components.kubernetes.kubeconfig": str(kubeconfig)}))
