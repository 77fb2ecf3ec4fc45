"""Export, verify and import secrets against the fake Infisical, through the real SDK."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyrage
import pytest

from tests.engines.infisical.world import PROJECT
from tests.fakes.infisical import FakeInfisical
from workers.context import Context
from workers.core.errors import ConfigError, UsageError
from workers.core.manifest import VerificationState
from workers.engines.infisical import export, restoration, verification
from workers.engines.infisical.options import InfisicalRestoreOptions


def test_export_counts_every_path_and_stores_only_ciphertext(
    ctx: Context, infisical: FakeInfisical, tmp_path: Path
) -> None:
    manifest = export.backup(ctx, "secrets")
    assert manifest.details["counts"] == {
        PROJECT: {
            "prod": {"/": 1, "/db": 1, "/db/replica": 1},
            "staging": {"/": 1},
        }
    }
    assert manifest.details["secrets"] == 4
    assert [o.name for o in manifest.objects] == ["secrets.json.zst.age"]
    stored = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())
    for value in ("api-Vq7-prod", "pg-Zr2-prod", "rep-Lk9-prod", "the public API"):
        assert value.encode() not in stored


def test_export_keeps_comments_and_tags(ctx: Context) -> None:
    manifest = export.backup(ctx, "secrets")
    keys = [Path(ctx.settings.encryption.identity_file or "").read_text().strip()]
    document = verification.read_export(ctx, manifest, keys)
    prod = document.environment(PROJECT, "prod")
    assert prod is not None
    by_key = {s.key: s for f in prod.folders for s in f.secrets}
    assert by_key["API_KEY"].comment == "the public API"
    assert [t.slug for t in by_key["PG_PASSWORD"].tags] == ["database"]
    assert "pg-Zr2-prod" not in repr(by_key["PG_PASSWORD"])


def test_changed_value_is_restored_after_a_dry_run_that_counts(
    ctx: Context, infisical: FakeInfisical
) -> None:
    manifest = export.backup(ctx, "secrets")
    infisical.put_secret(PROJECT, "prod", "/db", "PG_PASSWORD", "changed-by-intruder")
    infisical.put_secret(PROJECT, "prod", "/", "EXTRA", "left-alone")
    dry = restoration.restore(
        ctx, "secrets", manifest, InfisicalRestoreOptions(target_env="prod", dry_run=True)
    )
    assert dry.paths == {
        "/": {"create": 0, "update": 0, "unchanged": 1},
        "/db": {"create": 0, "update": 1, "unchanged": 0},
        "/db/replica": {"create": 0, "update": 0, "unchanged": 1},
    }
    assert infisical.value(PROJECT, "prod", "/db", "PG_PASSWORD") == "changed-by-intruder"
    done = restoration.restore(ctx, "secrets", manifest, InfisicalRestoreOptions(target_env="prod"))
    assert done.totals == {"create": 0, "update": 1, "unchanged": 2}
    assert infisical.value(PROJECT, "prod", "/db", "PG_PASSWORD") == "pg-Zr2-prod"
    assert infisical.value(PROJECT, "prod", "/", "EXTRA") == "left-alone"
    again = restoration.restore(
        ctx, "secrets", manifest, InfisicalRestoreOptions(target_env="prod", dry_run=True)
    )
    assert again.totals == {"create": 0, "update": 0, "unchanged": 3}


def test_import_into_an_empty_environment_creates_its_folders(
    ctx: Context, infisical: FakeInfisical
) -> None:
    manifest = export.backup(ctx, "secrets")
    options = InfisicalRestoreOptions(target_env="dr-scratch", source_env="prod")
    result = restoration.restore(ctx, "secrets", manifest, options)
    assert result.totals == {"create": 3, "update": 0, "unchanged": 0}
    assert result.target == f"{PROJECT}/dr-scratch"
    assert infisical.value(PROJECT, "dr-scratch", "/db/replica", "PG_REPLICA") == "rep-Lk9-prod"
    assert "pg-Zr2-prod" not in result.model_dump_json()


def test_an_ambiguous_source_is_refused_before_anything_changes(
    ctx: Context, infisical: FakeInfisical
) -> None:
    manifest = export.backup(ctx, "secrets")
    calls = len(infisical.requests)
    with pytest.raises(UsageError, match="ambiguous") as caught:
        restoration.restore(
            ctx, "secrets", manifest, InfisicalRestoreOptions(target_env="dr-scratch")
        )
    assert f"{PROJECT}/prod, {PROJECT}/staging" in caught.value.hint
    assert len(infisical.requests) == calls
    assert infisical.keys(PROJECT, "dr-scratch") == set()


def test_no_recipients_is_refused_before_any_secret_is_read(
    build_context: Callable[..., Context], infisical: FakeInfisical, tmp_path: Path
) -> None:
    def no_recipients(config: dict[str, Any]) -> None:
        config["encryption"] = {}

    ctx = build_context(no_recipients)
    with pytest.raises(ConfigError, match="always age-encrypted"):
        export.backup(ctx, "secrets")
    assert infisical.requests == []
    assert ctx.repo.index("secrets").backups == []


def test_shallow_and_deep_verify_pass_and_count(ctx: Context) -> None:
    manifest = export.backup(ctx, "secrets")
    shallow = verification.verify(ctx, "secrets", manifest)
    assert shallow.verification is not None
    assert shallow.verification.state == VerificationState.PASSED, shallow.verification.detail
    assert shallow.verification.checks["secrets.json.zst.age"]["age header"] == "ok"
    deep = verification.verify(ctx, "secrets", manifest, deep=True)
    assert deep.verification is not None
    assert deep.verification.state == VerificationState.PASSED, deep.verification.detail
    assert deep.verification.checks["secrets.json.zst.age"]["counts"] == "ok"


def test_a_wrong_identity_fails_deep_verify_clearly(
    build_context: Callable[..., Context], ctx: Context, tmp_path: Path
) -> None:
    manifest = export.backup(ctx, "secrets")
    wrong = tmp_path / "wrong-identity.txt"
    wrong.write_text(f"{pyrage.x25519.Identity.generate()}\n")

    def other_key(config: dict[str, Any]) -> None:
        config["encryption"]["identity_file"] = str(wrong)

    result = verification.verify(build_context(other_key), "secrets", manifest, deep=True)
    record = result.verification
    assert record is not None and record.state == VerificationState.FAILED
    assert "the age identity is not one of its recipients" in record.detail
    assert record.checks["secrets.json.zst.age"]["sha256"] == "ok"


def test_shallow_verify_sees_a_header_for_other_recipients(
    build_context: Callable[..., Context], ctx: Context
) -> None:
    manifest = export.backup(ctx, "secrets")
    second = str(pyrage.x25519.Identity.generate().to_public())
    claimed = manifest.model_copy(
        update={"encryption_recipients": (*manifest.encryption_recipients, second)}
    )
    record = verification.verify(ctx, "secrets", claimed).verification
    assert record is not None and record.state == VerificationState.FAILED
    assert "1 X25519 recipients in the header, manifest names 2" in record.detail


def test_an_environment_that_does_not_exist_is_refused_before_anything_changes(
    ctx: Context, infisical: FakeInfisical
) -> None:
    manifest = export.backup(ctx, "secrets")
    options = InfisicalRestoreOptions(target_env="nowhere", source_env="prod")
    with pytest.raises(UsageError, match="no environment nowhere in project"):
        restoration.restore(ctx, "secrets", manifest, options)
    writes = [p for m, p in infisical.requests if m in ("POST", "PATCH") and "/auth/" not in p]
    assert writes == []
