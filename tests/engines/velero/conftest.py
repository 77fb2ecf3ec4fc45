"""A Kubernetes API server with Velero's controller, and a context that talks to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.velero import FakeVelero, platform
from workers.context import Context
from workers.core.config import Settings


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    """The fake API server, with the platform's workloads."""
    fake = platform(FakeKubernetes().start())
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
