"""No secret value escapes: logs, progress, audit records, Redis, the store, argv, API paths.

Distinctive values are seeded, then export, verify (shallow and deep), import (dry and
real) and rotation run; every place a value could leak is read back and searched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from tests.engines.infisical.world import PROJECT, login
from tests.fakes.infisical import FakeInfisical
from tests.pgcluster import PgCluster
from workers.context import Context
from workers.engines.infisical import export, restoration, rotation, verification
from workers.engines.infisical.options import InfisicalRestoreOptions
from workers.state.audit_log import AuditLog

SEEDED = ("LEAKCANARY-Aa81-value", "LEAKCANARY-Bb92-db", "LEAKCANARY-Cc03-deep")


def argv_of_every_process() -> str:
    """Every process's command line on this machine, now."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            found.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # the process ended meanwhile
    return "\n".join(found)


def test_no_value_reaches_any_output(
    build_context: Callable[..., Context],
    infisical: FakeInfisical,
    scram_cluster: PgCluster,
    redis_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    scram_cluster.execute("DROP ROLE IF EXISTS app_user")
    # Set up with a verifier too: the server's statement log is searched like the rest.
    verifier = rotation.scram_verifier(SEEDED[1])
    scram_cluster.execute(f"CREATE ROLE app_user LOGIN PASSWORD '{verifier}'")
    login(scram_cluster, SEEDED[1])
    infisical.put_secret(PROJECT, "prod", "/", "CANARY", SEEDED[0], comment="a canary")
    infisical.put_secret(PROJECT, "prod", "/db", "APP_PASSWORD", SEEDED[1])
    infisical.put_secret(PROJECT, "prod", "/deep/er/still", "DEEP", SEEDED[2])

    def rotatable(config: dict[str, Any]) -> None:
        config["components"]["secrets"]["rotate"] = [
            {
                "project": PROJECT,
                "environment": "prod",
                "path": "/db",
                "key": "APP_PASSWORD",
                "system": "postgres-role",
                "role": "app_user",
                "dsn": scram_cluster.dsn,
            }
        ]

    ctx = build_context(rotatable)
    said: list[str] = []

    def progress(phase: str, **facts: Any) -> None:
        said.append(f"{phase} {facts}")

    client = redis_lib.Redis.from_url(redis_url)
    argv = [argv_of_every_process()]
    manifest = export.backup(ctx, "secrets", progress=progress)
    argv.append(argv_of_every_process())
    said.append(verification.verify(ctx, "secrets", manifest, progress=progress).model_dump_json())
    deep = verification.verify(ctx, "secrets", manifest, deep=True, progress=progress)
    said.append(deep.model_dump_json())
    infisical.put_secret(PROJECT, "prod", "/", "CANARY", "changed")
    for dry in (True, False):
        options = InfisicalRestoreOptions(target_env="prod", source_env="prod", dry_run=dry)
        result = restoration.restore(ctx, "secrets", manifest, options, progress=progress)
        said += [result.model_dump_json(), result.summary]
    argv.append(argv_of_every_process())
    audit = AuditLog(client, "kosmos-leak")
    report = rotation.rotate(ctx, "secrets", actor="U-carol", record=audit.record)
    new_password = infisical.value(PROJECT, "prod", "/db", "APP_PASSWORD")
    login(scram_cluster, new_password)  # the rotation happened: its value is searched for too
    said += [report.model_dump_json(), report.summary()]
    argv.append(argv_of_every_process())

    stored = b"".join(p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())
    in_redis = b"".join(
        repr(client.dump(key)).encode() for key in client.scan_iter(match="*", count=1000)
    )
    places = {
        "logs": "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records),
        "progress and results": "\n".join(said),
        "audit log": "\n".join(audit.lines()),
        "redis": in_redis.decode(errors="replace"),
        "store": stored.decode(errors="replace"),
        "argv": "\n".join(argv),
        "api paths": "\n".join(f"{m} {p}" for m, p in infisical.requests),
        "server log": (scram_cluster.root / "postgres.log").read_text(),
    }
    assert places["audit log"] and places["store"] and places["progress and results"]
    for value in (*SEEDED, new_password):
        found = {where: text.count(value) for where, text in places.items() if value in text}
        assert found == {}, f"{value[:12]}… leaked into {found}"
