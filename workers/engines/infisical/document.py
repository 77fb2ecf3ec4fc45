"""The secrets export document, its counts, and the plan of an import: pure, no I/O.

One document per run holds every exported project/environment, folder by folder. It only
ever exists in memory and, age-encrypted, in the store. Nothing here renders a value: a
secret's ``repr`` hides it, and a malformed document is reported by position, not content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from workers.core.errors import IntegrityError
from workers.core.model import Model

FORMAT: Literal["kosmos-infisical-export/1"] = "kosmos-infisical-export/1"
OBJECT_NAME = "secrets.json"
Counts = dict[str, dict[str, dict[str, int]]]
"""Secrets per project id, environment slug and folder path."""


class _Frozen(Model):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Tag(_Frozen):
    """A tag on a secret; its id only means something in the project it came from."""

    id: str
    slug: str


class SecretRecord(_Frozen):
    """One secret as exported: key, value, and what the API gives beside them."""

    key: str
    value: str = Field(repr=False)
    comment: str = ""
    tags: tuple[Tag, ...] = ()
    skip_multiline: bool = False

    def same_as(self, other: SecretRecord) -> bool:
        """Whether importing this over ``other`` would change nothing that is imported."""
        return (self.value, self.comment, self.skip_multiline) == (
            other.value,
            other.comment,
            other.skip_multiline,
        )


class Folder(_Frozen):
    """One folder path and the secrets directly in it."""

    path: str
    secrets: tuple[SecretRecord, ...] = ()


class EnvironmentExport(_Frozen):
    """Everything exported from one environment of one project."""

    project: str
    environment: str
    folders: tuple[Folder, ...]

    def secret_count(self) -> int:
        """How many secrets, over every folder."""
        return sum(len(folder.secrets) for folder in self.folders)


class SecretsExport(_Frozen):
    """The whole export of one run."""

    format: Literal["kosmos-infisical-export/1"] = FORMAT
    exported_at: datetime
    environments: tuple[EnvironmentExport, ...]

    def counts(self) -> Counts:
        """Secrets per project, environment and path: what the manifest records."""
        counts: Counts = {}
        for env in self.environments:
            paths = counts.setdefault(env.project, {}).setdefault(env.environment, {})
            for folder in env.folders:
                paths[folder.path] = len(folder.secrets)
        return counts

    def encode(self) -> bytes:
        """The document as JSON bytes (only ever handed to the encrypting pipeline)."""
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes, backup_id: str) -> SecretsExport:
        """Parse a decrypted document; IntegrityError naming where it is malformed, not what."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "the document"
            raise IntegrityError(
                f"the secrets export of {backup_id} is malformed at {where}: {first['type']}"
            ) from None

    def environment(self, project: str, environment: str) -> EnvironmentExport | None:
        """The export of one project/environment, if this document has it."""
        for env in self.environments:
            if (env.project, env.environment) == (project, environment):
                return env
        return None


def count_mismatches(expected: Any, found: Counts) -> list[str]:
    """Differences between the manifest's counts and a document's, one line each."""
    if not isinstance(expected, dict):
        return ["the manifest records no secret counts"]
    lines = []
    for where, want, got in _flatten_pairs(expected, found):
        if want != got:
            lines.append(f"{where}: manifest says {want}, the export holds {got}")
    return lines


def _flatten(counts: Any) -> dict[str, int]:
    flat: dict[str, int] = {}
    for project, envs in (counts or {}).items():
        for env, paths in (envs or {}).items():
            for path, number in (paths or {}).items():
                flat[f"{project}/{env}:{path}"] = number
    return flat


def _flatten_pairs(expected: Any, found: Counts) -> list[tuple[str, Any, Any]]:
    want, got = _flatten(expected), _flatten(found)
    return [(key, want.get(key, 0), got.get(key, 0)) for key in sorted(set(want) | set(got))]


@dataclass
class PathPlan:
    """What an import does in one folder."""

    create: list[SecretRecord] = field(default_factory=list)
    update: list[SecretRecord] = field(default_factory=list)
    unchanged: int = 0

    def counts(self) -> dict[str, int]:
        """Create / update / unchanged counts (what a dry run and the card show)."""
        return {"create": len(self.create), "update": len(self.update), "unchanged": self.unchanged}


@dataclass
class ImportPlan:
    """An import of one exported environment into one target, folder by folder."""

    source: tuple[str, str]
    target: tuple[str, str]
    paths: dict[str, PathPlan]
    missing_folders: list[str]

    def counts(self) -> dict[str, dict[str, int]]:
        """Counts per path; never a value."""
        return {path: plan.counts() for path, plan in sorted(self.paths.items())}

    def totals(self) -> dict[str, int]:
        """Counts summed over every path."""
        totals = {"create": 0, "update": 0, "unchanged": 0}
        for plan in self.paths.values():
            for key, number in plan.counts().items():
                totals[key] += number
        return totals

    @property
    def same_project(self) -> bool:
        """Whether tag ids carry over (they are per project)."""
        return self.source[0] == self.target[0]


def plan_import(
    source: EnvironmentExport,
    target: tuple[str, str],
    current: dict[str, dict[str, SecretRecord]],
) -> ImportPlan:
    """Compare an export with the target's current secrets (path -> key -> record).

    Secrets only in the target are left alone: an import restores, it never deletes.
    """
    paths: dict[str, PathPlan] = {}
    for folder in source.folders:
        plan = paths.setdefault(folder.path, PathPlan())
        there = current.get(folder.path, {})
        for record in folder.secrets:
            existing = there.get(record.key)
            if existing is None:
                plan.create.append(record)
            elif existing.same_as(record):
                plan.unchanged += 1
            else:
                plan.update.append(record)
    missing = sorted(path for path in paths if path not in current)
    return ImportPlan((source.project, source.environment), target, paths, missing)
