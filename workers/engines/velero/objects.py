"""Velero's objects as data: the Backup, Restore and Schedule we create, and what status says.

Pure: bodies are built from values, statuses read into models. Velero's phases are listed in
its API (``velero.io/v1``); ``PartiallyFailed`` is a finished phase that is not success.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import ConfigDict, Field

from workers.core.model import Model
from workers.core.ports import Progress

GROUP = "velero.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
DAILY_AT_THREE = "0 3 * * *"
"""The reference page's schedule: daily at 03:00."""
SCHEDULE_NAME = "kosmos-daily"
SCRATCH_SUFFIX = "kbverify"
"""Scratch namespaces are ``<namespace>-kbverify``: fixed, so the chart can name them."""
LABEL = "kosmos-backup/id"
"""Label on every object we create: the backup id (or run) it belongs to."""

SUCCEEDED = "Completed"
FINISHED = frozenset({"Completed", "PartiallyFailed", "Failed", "FailedValidation"})
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def velero_name(backup_id: str) -> str:
    """The Velero object name for one of our backup ids (Kubernetes names are lowercase)."""
    return backup_id.lower()


def ttl(retention: timedelta) -> str:
    """A retention as Velero's TTL, in hours: 30 days is ``720h0m0s``."""
    hours, rest = divmod(int(retention.total_seconds()), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes}m{seconds}s"


def check_namespace(name: str) -> str:
    """``name`` if it is a valid namespace name, else ValueError saying why."""
    if not _DNS_LABEL.match(name):
        raise ValueError(f"{name!r} is not a namespace name (lowercase letters, digits and '-')")
    return name


def backup_spec(namespaces: tuple[str, ...], retention: timedelta, location: str) -> dict[str, Any]:
    """The spec of a full backup of ``namespaces`` (also a Schedule's template)."""
    return {
        "includedNamespaces": list(namespaces),
        "ttl": ttl(retention),
        "storageLocation": location,
    }


def backup_body(name: str, backup_id: str, spec: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A ``Backup`` object named ``name`` in Velero's namespace."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Backup",
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: backup_id}},
        "spec": spec,
    }


def schedule_body(
    spec: dict[str, Any], namespace: str, cron: str = DAILY_AT_THREE
) -> dict[str, Any]:
    """The daily ``Schedule`` whose template is the full backup."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Schedule",
        "metadata": {"name": SCHEDULE_NAME, "namespace": namespace},
        "spec": {"schedule": cron, "template": spec, "useOwnerReferencesInBackup": False},
    }


def restore_body(
    name: str,
    backup_name: str,
    namespace: str,
    *,
    namespaces: tuple[str, ...] = (),
    mapping: dict[str, str] | None = None,
    label: str = "",
) -> dict[str, Any]:
    """A ``Restore`` of ``backup_name``: whole, or only ``namespaces``, optionally mapped."""
    spec: dict[str, Any] = {"backupName": backup_name}
    if namespaces:
        spec["includedNamespaces"] = list(namespaces)
    if mapping:
        spec["namespaceMapping"] = dict(mapping)
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if label:
        meta["labels"] = {LABEL: label}
    return {"apiVersion": API_VERSION, "kind": "Restore", "metadata": meta, "spec": spec}


class Outcome(Model):
    """A Backup's or Restore's status, as far as we judge it."""

    model_config = ConfigDict(frozen=True)

    name: str
    phase: str = "New"
    items_done: int = 0
    items_total: int = 0
    errors: int = 0
    warnings: int = 0
    validation_errors: tuple[str, ...] = ()
    failure_reason: str = ""
    started_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    namespaces: tuple[str, ...] = Field(default=(), description="spec.includedNamespaces")
    storage_location: str = ""

    @property
    def finished(self) -> bool:
        """Whether Velero is done with it, whatever the result."""
        return self.phase in FINISHED

    @property
    def succeeded(self) -> bool:
        """Completed, and nothing else: PartiallyFailed is not success."""
        return self.phase == SUCCEEDED

    def counts(self) -> str:
        """``3 errors, 1 warning`` (the words people read)."""
        return f"{_plural(self.errors, 'error')}, {_plural(self.warnings, 'warning')}"

    def summary(self) -> str:
        """One line: phase, items, errors and warnings, and why it failed."""
        text = f"{self.name} {self.phase}: {self.items_done}/{self.items_total} items, "
        text += self.counts()
        if self.validation_errors:
            text += "; invalid: " + "; ".join(self.validation_errors)
        if self.failure_reason:
            text += f"; {self.failure_reason}"
        return text

    def details(self) -> dict[str, Any]:
        """What our manifest records about the Velero backup."""
        return {
            "velero_backup": self.name,
            "phase": self.phase,
            "items": self.items_done,
            "total_items": self.items_total,
            "errors": self.errors,
            "warnings": self.warnings,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "namespaces": list(self.namespaces),
            "storage_location": self.storage_location,
        }


def outcome(obj: dict[str, Any]) -> Outcome:
    """Read a Backup or Restore object's status (a restore counts ``itemsRestored``)."""
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    progress = status.get("progress") or {}
    done = progress.get("itemsBackedUp", progress.get("itemsRestored", 0))
    return Outcome(
        name=obj["metadata"]["name"],
        phase=status.get("phase") or "New",
        items_done=int(done or 0),
        items_total=int(progress.get("totalItems") or 0),
        errors=int(status.get("errors") or 0),
        warnings=int(status.get("warnings") or 0),
        validation_errors=tuple(str(e) for e in status.get("validationErrors") or ()),
        failure_reason=str(status.get("failureReason") or ""),
        started_at=_time(status.get("startTimestamp")),
        completed_at=_time(status.get("completionTimestamp")),
        expires_at=_time(status.get("expiration")),
        namespaces=tuple(spec.get("includedNamespaces") or ()),
        storage_location=str(spec.get("storageLocation") or ""),
    )


def relay(progress: Progress, step: str) -> Callable[[dict[str, Any]], None]:
    """Pass a watched object's phase and item counts on as progress, once per change."""
    last: list[tuple[str, int, int]] = []

    def seen(obj: dict[str, Any]) -> None:
        now = outcome(obj)
        mark = (now.phase, now.items_done, now.items_total)
        if last and last[-1] == mark:
            return
        last.append(mark)
        progress(step, note=f"{now.phase}: {now.items_done}/{now.items_total} items")

    return seen


def scratch_mapping(namespaces: tuple[str, ...], tag: str) -> dict[str, str]:
    """Each namespace mapped to a scratch one named after it and ``tag`` (63 chars at most)."""
    mapping = {}
    for namespace in namespaces:
        suffix = f"-{tag}"
        mapping[namespace] = check_namespace(namespace[: 63 - len(suffix)].rstrip("-") + suffix)
    return mapping


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
