"""Rotation after an incident: a real PostgreSQL role's password, Infisical, the audit log."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import redis as redis_lib

from tests.engines.infisical.world import PROJECT, login
from tests.fakes.infisical import FakeInfisical
from tests.pgcluster import PgCluster
from workers.context import Context
from workers.core.audit import AuditAction
from workers.engines.infisical import rotation
from workers.state.audit_log import AuditLog

OLD_PASSWORD = "old-Hq4-app-password"


def test_scram_verifier_matches_the_rfc_vector() -> None:
    # RFC 7677's example exchange: its server signature comes from the verifier's ServerKey.
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    made = rotation.scram_verifier("pencil", salt)
    assert made.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    server_key = base64.b64decode(made.rsplit(":", 1)[1])
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    first = "n=user,r=rOprNGfwEbeRWgbNEkqO"
    auth = f"{first},r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}"
    signature = hmac.digest(server_key, auth.encode(), "sha256")
    assert base64.b64encode(signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_a_role_password_is_rotated_stored_and_audited(
    build_context: Callable[..., Context],
    infisical: FakeInfisical,
    scram_cluster: PgCluster,
    redis_url: str,
) -> None:
    scram_cluster.execute("DROP ROLE IF EXISTS app_user")
    scram_cluster.execute(f"CREATE ROLE app_user LOGIN PASSWORD '{OLD_PASSWORD}'")
    login(scram_cluster, OLD_PASSWORD)
    infisical.put_secret(PROJECT, "prod", "/db", "APP_PASSWORD", OLD_PASSWORD)

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
            },
            {"project": PROJECT, "environment": "prod", "key": "API_KEY", "system": "minio-user"},
        ]

    ctx = build_context(rotatable)
    audit = AuditLog(redis_lib.Redis.from_url(redis_url), "kosmos-test")
    report = rotation.rotate(ctx, "secrets", actor="U-carol", record=audit.record)

    assert report.rotated == (f"{PROJECT}/prod:/db APP_PASSWORD",)
    assert report.failed == {}
    new_password = infisical.value(PROJECT, "prod", "/db", "APP_PASSWORD")
    assert new_password != OLD_PASSWORD
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        login(scram_cluster, OLD_PASSWORD)
    login(scram_cluster, new_password)
    # Every other secret is a manual step; the rotated one is not.
    assert len(report.manual) == 4
    assert not any("APP_PASSWORD" in step for step in report.manual)
    minio = [step for step in report.manual if step.startswith(f"{PROJECT}/prod:/ API_KEY")]
    assert len(minio) == 1 and "mc admin user svcacct" in minio[0]
    records = [r for r in audit.tail(10) if r.action == AuditAction.SECRET_ROTATE]
    assert [(r.actor, r.details["outcome"]) for r in records] == [("U-carol", "rotated")]
    assert new_password not in records[0].line()
    # The statement the server logged carries a verifier, never the password.
    server_log = (scram_cluster.root / "postgres.log").read_text()
    assert "ALTER ROLE" in server_log and new_password not in server_log
    assert new_password not in report.model_dump_json()
