"""Verify a secrets export: checksums and the age header; deep, decrypt in memory and count."""

from __future__ import annotations

from typing import Any

from workers.context import Context
from workers.core.errors import ConfigError, IntegrityError, KosmosError, NotFoundError
from workers.core.manifest import Manifest, VerificationRecord, VerificationState
from workers.core.ports import Progress, no_progress
from workers.engines.infisical import age_header, document
from workers.engines.infisical.component import identities
from workers.storage.repository import object_key


def verify(
    ctx: Context,
    component: str,
    manifest: Manifest,
    *,
    deep: bool = False,
    progress: Progress = no_progress,
) -> Manifest:
    """Check the export and record the result; never prints a value."""
    keys = identities(ctx.settings) if deep else []
    if deep and not keys:
        raise ConfigError(
            "a deep verify of secrets decrypts them, and no age identity is configured",
            hint="set encryption.identity_file on this worker",
        )
    entry = _export_entry(manifest)
    checks: dict[str, Any] = {}  # what every object's checks found, as the doors show them
    progress("verify checksum", note=entry)
    try:
        ctx.repo.check_object(manifest, entry)
        checks["sha256"] = "ok"
        checks["age header"] = _header_check(ctx, manifest, entry)
    except (IntegrityError, NotFoundError) as exc:
        checks["sha256"] = exc.message
    problems = [str(v) for v in checks.values() if v != "ok"]
    if deep and not problems:
        progress("decrypt and count")
        try:
            counts = read_export(ctx, manifest, keys).counts()
            mismatches = document.count_mismatches(manifest.details.get("counts"), counts)
            checks["counts"] = "; ".join(mismatches) or "ok"
            problems += mismatches
        except KosmosError as exc:
            checks["decrypt"] = exc.message
            problems.append(exc.message)
    record = VerificationRecord(
        state=VerificationState.FAILED if problems else VerificationState.PASSED,
        at=ctx.clock(),
        deep=deep,
        detail="; ".join(problems)[:500] if problems else _summary(manifest, deep),
        checks={entry: checks},
    )
    return ctx.repo.record_verification(manifest, record)


def read_export(ctx: Context, manifest: Manifest, keys: list[str]) -> document.SecretsExport:
    """Decrypt and parse a backup's export in memory."""
    entry = _export_entry(manifest)
    try:
        data = b"".join(ctx.repo.open_object(manifest, entry, keys))
    except IntegrityError as exc:
        if "decrypt" not in exc.message and "age" not in exc.message:
            raise
        raise IntegrityError(
            f"cannot decrypt {manifest.id}: the age identity is not one of its recipients",
            hint="encryption.identity_file must hold a key the backup was encrypted to",
        ) from None
    return document.SecretsExport.decode(data, manifest.id)


def _export_entry(manifest: Manifest) -> str:
    for entry in manifest.objects:
        if entry.name.startswith(document.OBJECT_NAME):
            return entry.name
    raise IntegrityError(f"backup {manifest.id} holds no secrets export")


def _header_check(ctx: Context, manifest: Manifest, name: str) -> str:
    if not manifest.object(name).meta.get("encrypted"):
        return "the export is not encrypted"
    try:
        stanzas = age_header.read_header(ctx.repo.store.get_stream(object_key(manifest, name)))
    except ValueError as exc:
        return str(exc)
    problems = age_header.header_problems(stanzas, manifest.encryption_recipients)
    return "; ".join(problems) if problems else "ok"


def _summary(manifest: Manifest, deep: bool) -> str:
    total = manifest.details.get("secrets", 0)
    where = len(manifest.details.get("environments", []))
    if deep:
        return f"decrypted; {total} secrets in {where} environments match the manifest"
    return f"checksum and age header ok ({len(manifest.encryption_recipients)} recipients)"
