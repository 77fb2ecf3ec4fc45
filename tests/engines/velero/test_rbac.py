"""The chart's Role and ClusterRole grant exactly what the Velero engine calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.fakes.velero import FakeVelero
from workers.context import Context
from workers.engines.velero import backups, restores, scaling
from workers.engines.velero.cluster import connected

CHART = Path(__file__).parents[3] / "helm" / "kosmos-backup" / "templates" / "rbac.yaml"
UNUSED_BUT_ASKED = {
    (group, resource, verb)
    for group, resource in (("", "pods"), ("apps", "deployments"), ("apps", "statefulsets"))
    for verb in ("get", "list", "watch")
}
"""Read rights the issue asks the probe's role to hold (for diagnosis), used or not."""


def granted() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every rule in the chart's rbac.yaml."""
    text = "\n".join(line for line in CHART.read_text().splitlines() if "{{" not in line)
    found = set()
    for doc in yaml.safe_load_all(text):
        for rule in (doc or {}).get("rules", []):
            found |= {
                (group, resource, verb)
                for group in rule["apiGroups"]
                for resource in rule["resources"]
                for verb in rule["verbs"]
            }
    return found


def everything(ctx: Context, velero: FakeVelero) -> None:
    manifest = backups.backup(ctx, "kubernetes")
    made = backups.ensure_schedule(ctx, "kubernetes")
    velero.kube.put(
        "apis/velero.io/v1", "velero", "schedules", {**made, "spec": {"schedule": "0 5 * * *"}}
    )
    backups.ensure_schedule(ctx, "kubernetes")
    backups.list_backups(ctx, "kubernetes")
    backups.verify(ctx, "kubernetes", manifest, deep=True)
    restores.restore(ctx, "kubernetes", "latest", namespaces=["kosmos-agents"], health_budget=5)
    with connected(ctx, "kubernetes") as cluster:
        recorded = scaling.scale_down(cluster, ["kosmos-agents", "kosmos-data"], "run-1")
        scaling.scale_up(cluster, recorded)
        scaling.wait_healthy(cluster, ["kosmos-agents", "kosmos-data"], 5, poll=0.1)


def test_the_chart_grants_every_call_and_nothing_more(ctx: Context, velero: FakeVelero) -> None:
    everything(ctx, velero)
    calls: Any = velero.kube.calls
    rules = granted()
    assert calls - rules == set(), "the chart lacks these"
    assert rules - calls - UNUSED_BUT_ASKED == set(), "the chart grants more than is used"
