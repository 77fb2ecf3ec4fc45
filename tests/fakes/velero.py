"""Velero's controller, played against the fake Kubernetes API server.

A thread moves every Backup and Restore in Velero's namespace through its phases over time,
as Velero does: New -> InProgress (items counted up each tick) -> Completed, or
PartiallyFailed / Failed when a test asks, or FailedValidation for an unknown storage
location. A Backup records the workloads of its namespaces; a Restore creates them again,
in the namespaces ``namespaceMapping`` names. Schedules are marked Enabled.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.kubernetes import FakeKubernetes

API = "apis/velero.io/v1"
APPS = "apis/apps/v1"
WORKLOADS = ("deployments", "statefulsets")
NAMESPACES = ("kosmos-agents", "kosmos-data", "kosmos-system")


def platform(kube: FakeKubernetes) -> FakeKubernetes:
    """The platform's workloads in its three namespaces (six, one of them scaled to 0)."""
    kube.add_deployment("kosmos-agents", "planner", replicas=3)
    kube.add_deployment("kosmos-agents", "writer", replicas=1)
    kube.add_deployment("kosmos-agents", "paused", replicas=0)
    kube.add_workload("statefulsets", "kosmos-data", "postgres", replicas=1)
    kube.add_workload("statefulsets", "kosmos-data", "minio", replicas=2)
    kube.add_deployment("kosmos-system", "ingress", replicas=2)
    return kube


class FakeVelero:
    """The controller: ``partially_fail`` / ``fail`` hold names of backups to end that way
    (``*`` for every one); ``fail_restores`` ends restores PartiallyFailed."""

    def __init__(
        self,
        kube: FakeKubernetes,
        namespace: str = "velero",
        *,
        tick: float = 0.02,
        per_tick: int = 2,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.tick = tick
        self.per_tick = per_tick
        self.locations = {"default"}
        self.partially_fail: set[str] = set()
        self.fail: set[str] = set()
        self.fail_restores = False
        self.contents: dict[str, list[dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> FakeVelero:
        """Run the controller in the background."""
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the controller."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            self.step()

    def step(self) -> None:
        """One reconcile pass over every Backup, Restore and Schedule."""
        for obj in list(self.kube.listed(API, self.namespace, "backups")):
            self._backup(json.loads(json.dumps(obj)))
        for obj in list(self.kube.listed(API, self.namespace, "restores")):
            self._restore(json.loads(json.dumps(obj)))
        for obj in list(self.kube.listed(API, self.namespace, "schedules")):
            if (obj.get("status") or {}).get("phase") != "Enabled":
                self._save("schedules", {**obj, "status": {"phase": "Enabled"}})

    # -- backups -----------------------------------------------------------------------------

    def _backup(self, obj: dict[str, Any]) -> None:
        status = obj.setdefault("status", {})
        name, spec = obj["metadata"]["name"], obj.get("spec") or {}
        phase = status.get("phase")
        if phase is None:
            location = spec.get("storageLocation") or "default"
            if location not in self.locations:
                status.update(
                    phase="FailedValidation",
                    validationErrors=[f'backup storage location "{location}" not found'],
                )
            else:
                self.contents[name] = self._snapshot(spec.get("includedNamespaces") or [])
                total = len(self.contents[name]) + len(spec.get("includedNamespaces") or [])
                status.update(
                    phase="InProgress",
                    startTimestamp=_now(),
                    progress={"totalItems": total, "itemsBackedUp": 0},
                )
        elif phase == "InProgress":
            progress = status["progress"]
            progress["itemsBackedUp"] = min(
                progress["totalItems"], progress["itemsBackedUp"] + self.per_tick
            )
            if progress["itemsBackedUp"] >= progress["totalItems"]:
                self._finish_backup(name, spec, status)
        else:
            return
        self._save("backups", obj)

    def _finish_backup(self, name: str, spec: dict[str, Any], status: dict[str, Any]) -> None:
        if self.fail & {name, "*"}:
            status.update(phase="Failed", failureReason="plugin panicked", errors=1)
        elif self.partially_fail & {name, "*"}:
            status.update(phase="PartiallyFailed", errors=3, warnings=2)
        else:
            status.update(phase="Completed", errors=0, warnings=0)
        hours = int(str(spec.get("ttl") or "720h").split("h")[0])
        status.update(
            completionTimestamp=_now(),
            expiration=(datetime.now(UTC) + timedelta(hours=hours)).isoformat(),
        )

    def _snapshot(self, namespaces: list[str]) -> list[dict[str, Any]]:
        found = []
        for namespace in namespaces:
            for plural in WORKLOADS:
                for obj in self.kube.listed(APPS, namespace, plural):
                    found.append({"plural": plural, "object": json.loads(json.dumps(obj))})
        return found

    # -- restores ----------------------------------------------------------------------------

    def _restore(self, obj: dict[str, Any]) -> None:
        status = obj.setdefault("status", {})
        spec = obj.get("spec") or {}
        phase = status.get("phase")
        source = self.kube.get(API, self.namespace, "backups", spec.get("backupName", ""))
        if phase is None:
            done = (source or {}).get("status", {}).get("phase")
            if done not in ("Completed", "PartiallyFailed"):
                status.update(
                    phase="FailedValidation",
                    validationErrors=[f"backup {spec.get('backupName')} is not ready: {done}"],
                )
            else:
                items = self._chosen(spec)
                status.update(
                    phase="InProgress",
                    startTimestamp=_now(),
                    progress={"totalItems": len(items), "itemsRestored": 0},
                )
        elif phase == "InProgress":
            progress = status["progress"]
            progress["itemsRestored"] = min(
                progress["totalItems"], progress["itemsRestored"] + self.per_tick
            )
            if progress["itemsRestored"] >= progress["totalItems"]:
                skipped = self._recreate(spec)
                phase, errors = ("PartiallyFailed", 1) if self.fail_restores else ("Completed", 0)
                status.update(
                    phase=phase, errors=errors, warnings=skipped, completionTimestamp=_now()
                )
        else:
            return
        self._save("restores", obj)

    def _chosen(self, spec: dict[str, Any]) -> list[dict[str, Any]]:
        only = set(spec.get("includedNamespaces") or [])
        return [
            item
            for item in self.contents.get(spec["backupName"], [])
            if not only or item["object"]["metadata"]["namespace"] in only
        ]

    def _recreate(self, spec: dict[str, Any]) -> int:
        """Create the chosen objects; one that exists already is left as it is (a warning)."""
        mapping = spec.get("namespaceMapping") or {}
        skipped = 0
        for item in self._chosen(spec):
            obj = json.loads(json.dumps(item["object"]))
            namespace = mapping.get(obj["metadata"]["namespace"], obj["metadata"]["namespace"])
            if self.kube.get(APPS, namespace, item["plural"], obj["metadata"]["name"]):
                skipped += 1
                continue
            replicas = obj["spec"].get("replicas", 1)
            self.kube.add_workload(
                item["plural"], namespace, obj["metadata"]["name"], replicas=replicas, ready=0
            )
            self.kube.scaled((APPS, namespace, item["plural"], obj["metadata"]["name"]), replicas)
        return skipped

    def _save(self, plural: str, obj: dict[str, Any]) -> None:
        if self.kube.get(API, self.namespace, plural, obj["metadata"]["name"]) is not None:
            self.kube.put(API, self.namespace, plural, obj)


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
