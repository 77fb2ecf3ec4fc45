"""Velero restores: whole, some namespaces, a Schedule's backup by name, bad input refused."""

from __future__ import annotations

import pytest

from tests.fakes.velero import FakeVelero
from workers.context import Context
from workers.core.errors import EngineError, NotFoundError, UsageError
from workers.engines.velero import backups, restores

VELERO = "apis/velero.io/v1"
APPS = "apis/apps/v1"


def lose(velero: FakeVelero, namespace: str) -> None:
    velero.kube.namespace_gone(namespace)


def test_restore_latest_brings_back_everything(ctx: Context, velero: FakeVelero) -> None:
    manifest = backups.backup(ctx, "kubernetes")
    lose(velero, "kosmos-agents")
    lose(velero, "kosmos-data")
    result = restores.restore(ctx, "kubernetes", "latest", health_budget=10)
    assert result.backup_id == manifest.id and result.phase == "Completed"
    assert result.items == result.total_items == 6
    assert velero.kube.get(APPS, "kosmos-agents", "deployments", "planner")
    assert velero.kube.get(APPS, "kosmos-data", "statefulsets", "minio")
    assert "kosmos-agents/deployments/planner" in result.healthy
    restore = velero.kube.get(VELERO, "velero", "restores", result.restore)
    assert restore is not None and "includedNamespaces" not in restore["spec"]


def test_restore_some_namespaces_only(ctx: Context, velero: FakeVelero) -> None:
    manifest = backups.backup(ctx, "kubernetes")
    lose(velero, "kosmos-agents")
    lose(velero, "kosmos-data")
    result = restores.restore(ctx, "kubernetes", manifest.id[:-2], namespaces="kosmos-agents")
    assert result.namespaces == ("kosmos-agents",)
    assert velero.kube.get(APPS, "kosmos-agents", "deployments", "writer")
    assert velero.kube.get(APPS, "kosmos-data", "statefulsets", "minio") is None
    restore = velero.kube.get(VELERO, "velero", "restores", result.restore)
    assert restore is not None and restore["spec"]["includedNamespaces"] == ["kosmos-agents"]


def test_bad_namespaces_are_refused_before_anything_is_made(
    ctx: Context, velero: FakeVelero
) -> None:
    backups.backup(ctx, "kubernetes")
    with pytest.raises(UsageError) as caught:
        restores.restore(ctx, "kubernetes", "latest", namespaces=["kube-system"])
    assert "kube-system" in caught.value.message and "kosmos-agents" in (caught.value.hint or "")
    with pytest.raises(UsageError):
        restores.restore(ctx, "kubernetes", "latest", namespaces=["Not_A_Namespace"])
    assert not list(velero.kube.listed(VELERO, "velero", "restores"))


def test_unknown_ref_is_not_found(ctx: Context, velero: FakeVelero) -> None:
    with pytest.raises(NotFoundError):
        restores.restore(ctx, "kubernetes", "latest")
    with pytest.raises(NotFoundError):
        restores.restore(ctx, "kubernetes", "no-such-backup")


def test_a_schedules_backup_is_restored_by_its_velero_name(
    ctx: Context, velero: FakeVelero
) -> None:
    made = backups.backup(ctx, "kubernetes")
    name = made.details["velero_backup"]
    lose(velero, "kosmos-system")
    result = restores.restore(ctx, "kubernetes", name, namespaces=["kosmos-system"])
    assert result.backup_id is None and result.velero_backup == name
    assert velero.kube.get(APPS, "kosmos-system", "deployments", "ingress")


def test_a_partially_failed_restore_fails_with_counts(ctx: Context, velero: FakeVelero) -> None:
    backups.backup(ctx, "kubernetes")
    # Nothing was lost: every object exists, and Velero warns for each it skips.
    velero.fail_restores = True
    with pytest.raises(EngineError) as caught:
        restores.restore(ctx, "kubernetes", "latest")
    assert "PartiallyFailed" in caught.value.message and "1 error" in caught.value.message
