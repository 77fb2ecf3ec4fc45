"""Verifying a snapshot: checksums and ``snapshot status``; deep, a scratch etcd compared."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from workers.context import Context
from workers.core.errors import IntegrityError, NotFoundError
from workers.core.manifest import Manifest, VerificationRecord, VerificationState
from workers.core.ports import Progress, no_progress
from workers.engines.etcd import etcdctl, scratch
from workers.engines.etcd.backup import OBJECT, download, facts_of, identities
from workers.engines.etcd.snapshot import SnapshotFacts, SnapshotStatus


def verify(
    ctx: Context,
    component: str,
    manifest: Manifest,
    *,
    deep: bool = False,
    progress: Progress = no_progress,
) -> Manifest:
    """Check the stored sha256, the snapshot's own status; ``deep`` serves it and compares."""
    facts = facts_of(manifest)
    checks: dict[str, Any] = {}
    problems: list[str] = []
    for entry in manifest.objects:
        progress("verify checksum", note=entry.name)
        try:
            ctx.repo.check_object(manifest, entry.name)
            checks[entry.name] = {"sha256": "ok"}
        except (IntegrityError, NotFoundError) as exc:
            checks[entry.name] = {"sha256": exc.message}
            problems.append(exc.message)
    keys = identities(ctx.settings)
    encrypted = any(e.meta.get("encrypted") for e in manifest.objects)
    # One object, one snapshot: what is found of it goes beside its checksum.
    found = checks[manifest.objects[0].name]
    if not problems and encrypted and not keys:
        found["snapshot"] = "not read: no age identity (encryption.identity_file)"
    elif not problems:
        with tempfile.TemporaryDirectory(prefix="kosmos-etcd-verify-") as tmp:
            path = download(ctx.repo, manifest, keys, Path(tmp) / OBJECT)
            problems += _check_snapshot(path, facts, found, deep, progress)
    record = VerificationRecord(
        state=VerificationState.FAILED if problems else VerificationState.PASSED,
        at=ctx.clock(),
        deep=deep,
        detail="; ".join(problems)[:500] if problems else _summary(facts, found, deep),
        checks=checks,
    )
    return ctx.repo.record_verification(manifest, record)


def _check_snapshot(
    path: Path, facts: SnapshotFacts, checks: dict[str, Any], deep: bool, progress: Progress
) -> list[str]:
    progress("snapshot status")
    try:
        status = etcdctl.status(path, OBJECT)
    except IntegrityError as exc:
        checks["snapshot"] = exc.message
        return [exc.message]
    checks["snapshot"] = "ok"
    checks |= {"revision": status.revision, "etcd_hash": status.hash}
    problems = _differences(facts.status, status)
    if deep and not problems:
        progress("restore into a scratch etcd")
        with scratch.serving(path, path.parent) as server:
            if facts.keys is None:
                # The revision was compacted before its keys were read: serving it is the check.
                checks["restored_keys"] = "not compared: no key sample was recorded"
            else:
                count, mismatches = scratch.compare_with(server, facts.keys)
                checks["restored_keys"] = count
                problems += mismatches
    return problems


def _differences(recorded: SnapshotStatus, found: SnapshotStatus) -> list[str]:
    """Where the downloaded snapshot's status differs from what the backup recorded."""
    return [
        f"snapshot {name} is {getattr(found, name)}, the backup recorded {getattr(recorded, name)}"
        for name in ("hash", "revision", "total_keys", "total_size")
        if getattr(found, name) != getattr(recorded, name)
    ]


def _summary(facts: SnapshotFacts, checks: dict[str, Any], deep: bool) -> str:
    """What a passed verification checked, in one line."""
    status = facts.status
    text = f"sha256 matches; snapshot status: revision {status.revision}, hash {status.hash}"
    restored = checks.get("restored_keys")
    if deep and isinstance(restored, int):
        sample = len(facts.keys.sample) if facts.keys else 0
        text += f"; restored into a scratch etcd: {restored:,} keys, {sample} sampled, all match"
    elif deep:
        text += "; restored into a scratch etcd, which started"
    return text
