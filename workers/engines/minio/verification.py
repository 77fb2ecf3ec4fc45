"""Verify a snapshot: every referenced blob exists with its size; deep re-hashes them."""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.context import Context
from workers.core.errors import KosmosError
from workers.core.manifest import Manifest, VerificationRecord, VerificationState
from workers.core.ports import Progress, no_progress
from workers.engines.minio.blobs import Blobs
from workers.engines.minio.mirror import blobs_of, entries_of
from workers.engines.minio.snapshot import Entry, sample

DEEP_SAMPLE = 100
"""Blobs a deep verify re-hashes unless ``full`` asks for all of them."""
NAMED = 20
"""Damaged keys named in the record's detail (all of them are in its checks)."""


@dataclass
class Findings:
    """Keys whose blobs are missing, of the wrong size, or do not hash to their name."""

    checked: int = 0
    rehashed: int = 0
    damaged: dict[str, str] = field(default_factory=dict)

    def add(self, entries: list[Entry], problem: str) -> None:
        """Name every key that points at a damaged blob."""
        for entry in entries:
            self.damaged[f"{entry.bucket}/{entry.key}"] = problem


def verify(
    ctx: Context,
    component: str,
    manifest: Manifest,
    *,
    deep: bool = False,
    full: bool = False,
    progress: Progress = no_progress,
) -> Manifest:
    """Check the snapshot's blobs, record the result, and return the updated manifest."""
    blobs = blobs_of(ctx, component)
    progress("verify keys")
    try:
        entries = entries_of(ctx.repo, manifest)
    except KosmosError as exc:
        return _record(ctx, manifest, deep, f"keys listing unreadable: {exc.message}", {})
    findings = check(blobs, entries, deep=deep or full, full=full, seed=manifest.id)
    checks: dict[str, object] = {
        "snapshot": {
            "objects": len(entries),
            "blobs": findings.checked,
            "rehashed": findings.rehashed,
        }
    }
    if findings.damaged:
        checks["damaged"] = findings.damaged
    if findings.damaged:
        names = sorted(findings.damaged)
        shown = ", ".join(names[:NAMED]) + (" …" if len(names) > NAMED else "")
        detail = f"{len(names)} keys have damaged blobs: {shown}"
        return _record(ctx, manifest, deep or full, detail, checks)
    detail = f"{findings.checked} blobs present" + (
        f", {findings.rehashed} re-hashed" if findings.rehashed else ""
    )
    record = VerificationRecord(
        state=VerificationState.PASSED,
        at=ctx.clock(),
        deep=deep or full,
        detail=detail,
        checks=checks,
    )
    return ctx.repo.record_verification(manifest, record)


def check(blobs: Blobs, entries: list[Entry], *, deep: bool, full: bool, seed: str) -> Findings:
    """Sizes from one listing of the blobs; with ``deep`` a sample (or all) re-hashed."""
    by_blob: dict[str, list[Entry]] = {}
    for entry in entries:
        by_blob.setdefault(entry.sha256, []).append(entry)
    stored = blobs.stored()
    findings = Findings(checked=len(by_blob))
    for sha, users in by_blob.items():
        present = stored.get(sha)
        if present is None:
            findings.add(users, "missing")
        elif present[0] != users[0].size:
            findings.add(users, f"{present[0]} bytes, expected {users[0].size}")
    if deep:
        count = len(by_blob) if full else DEEP_SAMPLE
        for entry in sample(entries, count, seed):
            if entry.sha256 not in stored:
                continue
            findings.rehashed += 1
            size, sha = blobs.rehash(entry.sha256)
            if sha != entry.sha256 or size != entry.size:
                findings.add(by_blob[entry.sha256], "content does not match its sha256")
    return findings


def _record(
    ctx: Context, manifest: Manifest, deep: bool, detail: str, checks: dict[str, object]
) -> Manifest:
    record = VerificationRecord(
        state=VerificationState.FAILED, at=ctx.clock(), deep=deep, detail=detail, checks=checks
    )
    return ctx.repo.record_verification(manifest, record)
