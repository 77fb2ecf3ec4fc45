"""Velero backups through the real kubernetes client against the fake API server and controller."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.kubernetes import FakeKubernetes
from tests.fakes.velero import NAMESPACES, FakeVelero
from workers.context import Context
from workers.core.catalog import find_backup
from workers.core.errors import EngineError
from workers.engines.velero import backups

VELERO = "apis/velero.io/v1"


class Notes:
    """A Progress that keeps the notes."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def __call__(self, phase: str, **fields: Any) -> None:
        if fields.get("note"):
            self.notes.append(f"{phase} {fields['note']}")


def test_backup_to_completed_records_velero_facts(ctx: Context, velero: FakeVelero) -> None:
    notes = Notes()
    manifest = backups.backup(ctx, "kubernetes", progress=notes)
    created = velero.kube.get(VELERO, "velero", "backups", manifest.details["velero_backup"])
    assert created is not None
    assert created["spec"] == {
        "includedNamespaces": list(NAMESPACES),
        "ttl": "720h0m0s",
        "storageLocation": "default",
    }
    details = manifest.details
    assert details["phase"] == "Completed"
    assert details["items"] == details["total_items"] == 9  # 6 workloads, 3 namespaces
    assert (details["errors"], details["warnings"]) == (0, 0)
    assert details["started_at"] and details["completed_at"]
    assert details["inventory"]["kosmos-data"] == [
        "kosmos-data/statefulsets/minio",
        "kosmos-data/statefulsets/postgres",
    ]
    assert manifest.verification is None
    # Item counts were relayed as they grew, ending at the total.
    counted = [n for n in notes.notes if "items" in n]
    assert counted[0] != counted[-1] and counted[-1] == "backup Completed: 9/9 items"
    assert find_backup(ctx.repo.index("kubernetes"), "latest").id == manifest.id  # type: ignore[union-attr]


def test_partially_failed_is_a_failure_with_its_counts(ctx: Context, velero: FakeVelero) -> None:
    velero.partially_fail.add("*")
    with pytest.raises(EngineError) as caught:
        backups.backup(ctx, "kubernetes")
    assert "PartiallyFailed" in caught.value.message
    assert "3 errors, 2 warnings" in caught.value.message
    index = ctx.repo.index("kubernetes")
    [recorded] = index.backups
    assert recorded.verification is not None and recorded.verification.state == "failed"
    assert find_backup(index, "latest") is None  # never counted as good


def test_unknown_storage_location_fails_validation(
    make_settings: Any, kubeconfig: Any, velero: FakeVelero
) -> None:
    ctx = Context(
        make_settings(
            **{
                "components.kubernetes.kubeconfig": str(kubeconfig),
                "components.kubernetes.storage_location": "oss-nowhere",
            }
        )
    )
    with pytest.raises(EngineError) as caught:
        backups.backup(ctx, "kubernetes")
    assert "FailedValidation" in caught.value.message and "oss-nowhere" in caught.value.message


def test_a_watch_dropped_mid_way_is_resumed_from_the_last_version(
    ctx: Context, velero: FakeVelero
) -> None:
    velero.kube.drop_watches, velero.kube.drop_after_events = 1, 2
    manifest = backups.backup(ctx, "kubernetes")
    assert manifest.details["phase"] == "Completed"
    first, second = velero.kube.watches[:2]
    # The second watch starts where the first was cut, not from the beginning again.
    assert int(second["resourceVersion"]) > int(first["resourceVersion"])
    assert velero.kube.drop_watches == 0


def test_forbidden_create_names_the_verb_and_resource(ctx: Context, velero: FakeVelero) -> None:
    velero.kube.forbidden.add(("create", "backups"))
    with pytest.raises(EngineError) as caught:
        backups.backup(ctx, "kubernetes")
    assert "forbids create on backups.velero.io" in caught.value.message
    assert "Role" in (caught.value.hint or "")
    assert ctx.repo.index("kubernetes").backups == []  # nothing committed
    assert not list(velero.kube.listed(VELERO, "velero", "backups"))


def test_schedule_is_created_then_kept_to_our_spec(ctx: Context, kube: FakeKubernetes) -> None:
    made = backups.ensure_schedule(ctx, "kubernetes")
    assert made["spec"]["schedule"] == "0 3 * * *"
    assert made["spec"]["template"]["ttl"] == "720h0m0s"
    assert made["spec"]["template"]["includedNamespaces"] == list(NAMESPACES)
    kube.put(
        VELERO,
        "velero",
        "schedules",
        {**made, "spec": {**made["spec"], "schedule": "0 5 * * *"}},
    )
    again = backups.ensure_schedule(ctx, "kubernetes")
    assert again["spec"]["schedule"] == "0 3 * * *"


def test_list_joins_velero_backups_and_our_records(ctx: Context, velero: FakeVelero) -> None:
    ours = backups.backup(ctx, "kubernetes")
    velero.kube.put(
        VELERO,
        "velero",
        "backups",
        {
            "metadata": {"name": "kosmos-daily-20991231030000"},
            "spec": {"includedNamespaces": list(NAMESPACES)},
            "status": {
                "phase": "Completed",
                "startTimestamp": "2099-12-31T03:00:00Z",
                "progress": {"totalItems": 9, "itemsBackedUp": 9},
            },
        },
    )
    lines = backups.list_backups(ctx, "kubernetes")
    assert [line.velero_backup for line in lines] == [
        "kosmos-daily-20991231030000",
        ours.details["velero_backup"],
    ]
    assert lines[0].backup_id is None and not lines[0].recorded
    assert lines[1].backup_id == ours.id and lines[1].phase == "Completed"


def test_verify_reads_velero_and_deep_restores_into_scratch_namespaces(
    ctx: Context, velero: FakeVelero
) -> None:
    manifest = backups.backup(ctx, "kubernetes")
    shallow = backups.verify(ctx, "kubernetes", manifest)
    assert shallow.verification is not None and shallow.verification.state == "passed"
    deep = backups.verify(ctx, "kubernetes", manifest, deep=True)
    record = deep.verification
    assert record is not None and record.state == "passed", record
    assert record.checks["restored"] == 6
    restore = velero.kube.get(VELERO, "velero", "restores", record.checks["restore"])
    assert restore is not None
    mapping = restore["spec"]["namespaceMapping"]
    assert set(mapping) == set(NAMESPACES) and not set(mapping.values()) & set(NAMESPACES)
    for scratch in mapping.values():  # cleaned up after the check
        assert not list(velero.kube.listed("apis/apps/v1", scratch, "deployments"))
    # The live namespaces were not touched.
    assert velero.kube.get("apis/apps/v1", "kosmos-agents", "deployments", "planner")


def test_verify_fails_when_velero_lost_the_backup(ctx: Context, velero: FakeVelero) -> None:
    manifest = backups.backup(ctx, "kubernetes")
    velero.kube.remove((VELERO, "velero", "backups", manifest.details["velero_backup"]))
    checked = backups.verify(ctx, "kubernetes", manifest)
    assert checked.verification is not None and checked.verification.state == "failed"
    assert "not found" in checked.verification.detail


def test_each_backup_keeps_velero_daily_schedule(ctx: Context, velero: FakeVelero) -> None:
    manifest = backups.backup(ctx, "kubernetes")
    schedule = velero.kube.get(VELERO, "velero", "schedules", "kosmos-daily")
    assert schedule is not None and schedule["spec"]["schedule"] == "0 3 * * *"
    assert manifest.details["schedule"] == "kosmos-daily at 0 3 * * *"


def test_a_schedule_it_may_not_manage_does_not_stop_the_backup(
    ctx: Context, velero: FakeVelero
) -> None:
    velero.kube.forbidden.add(("create", "schedules"))
    manifest = backups.backup(ctx, "kubernetes")
    assert manifest.details["phase"] == "Completed"
    assert manifest.details["schedule"].startswith("not kept: kubernetes forbids create")
