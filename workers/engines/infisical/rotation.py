"""Credential rotation after a security incident: new values, applied, stored, audited.

For each secret marked rotatable, a new value is generated, applied to the system it opens
(a PostgreSQL role: ``ALTER ROLE … PASSWORD`` with a SCRAM verifier computed here, so the
password itself reaches neither a command line nor the server's statement log), and then
written to Infisical. Every other secret gets a manual step. The audit log records what was
rotated, by whom, and never a value.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Callable

from pydantic import ConfigDict

from workers.context import Context
from workers.core.audit import AuditAction
from workers.core.config import RotatableSecret
from workers.core.errors import ConfigError, EngineError, KosmosError
from workers.core.model import Model
from workers.core.ports import Progress, no_progress
from workers.engines.infisical.api import InfisicalApi
from workers.engines.infisical.component import settings_of

SCRAM_ITERATIONS = 4096
AUTOMATED = ("postgres-role",)
"""Systems this build rotates itself; the rest are manual steps."""
MANUAL = {
    "minio-user": "a MinIO user's key: issue a new one with `mc admin user svcacct edit` "
    "(the MinIO admin API is not automated yet), then set it in Infisical",
    "": "issue a new value where it is made, then set it in Infisical",
}
Recorder = Callable[..., object]
"""Appends one audit record: ``record(action, actor, at=…, component=…, **details)``."""


class RotationReport(Model):
    """What a rotation did: secrets rotated, failures, and manual steps; never a value."""

    model_config = ConfigDict(frozen=True)

    rotated: tuple[str, ...]
    failed: dict[str, str]
    manual: tuple[str, ...]

    def summary(self) -> str:
        """One line for people."""
        line = f"rotated {len(self.rotated)} secrets"
        if self.failed:
            line += f", {len(self.failed)} failed"
        return line + f"; {len(self.manual)} need a manual rotation"


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802, 7677)."""
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def name_of(item: RotatableSecret) -> str:
    """How a rotatable secret is named to people: where it lives, never its value."""
    return f"{item.project}/{item.environment}:{item.path} {item.key}"


def rotate(
    ctx: Context,
    component: str,
    *,
    actor: str,
    record: Recorder,
    progress: Progress = no_progress,
) -> RotationReport:
    """Rotate every rotatable secret of the component; list manual steps for the rest."""
    settings = settings_of(ctx, component)
    rotated: list[str] = []
    failed: dict[str, str] = {}
    with InfisicalApi(settings) as api:
        for item in settings.rotate:
            if item.system not in AUTOMATED:
                continue
            name = name_of(item)
            progress("rotate", note=name)
            facts: dict[str, str] = {"outcome": "rotated"}
            try:
                _rotate_one(api, item)
                rotated.append(name)
            except KosmosError as exc:
                failed[name] = exc.message
                facts = {"outcome": "failed", "error": exc.message}
            record(
                AuditAction.SECRET_ROTATE,
                actor,
                at=ctx.clock(),
                component=component,
                secret=name,
                system=item.system,
                **facts,
            )
        manual = _manual_steps(api, settings.projects, settings.environments, settings.rotate)
    return RotationReport(rotated=tuple(rotated), failed=failed, manual=tuple(manual))


def _rotate_one(api: InfisicalApi, item: RotatableSecret) -> None:
    new_value = secrets.token_urlsafe(32)
    set_role_password(item, new_value)
    try:
        api.set_value((item.project, item.environment), item.path, item.key, new_value)
    except KosmosError as exc:
        raise EngineError(
            f"the new value is live in {item.system} but not stored in Infisical: {exc.message}",
            hint="run the rotation again: it sets a fresh value in both",
        ) from None


def set_role_password(item: RotatableSecret, password: str) -> None:
    """``ALTER ROLE … PASSWORD`` with a SCRAM verifier, over a psycopg connection."""
    import psycopg
    from psycopg import sql

    if not item.role or item.dsn is None:
        raise ConfigError(
            f"{name_of(item)}: a postgres-role rotation needs role and dsn",
            hint="set both on the rotate entry",
        )
    statement = sql.SQL("ALTER ROLE {} PASSWORD {}").format(
        sql.Identifier(item.role), sql.Literal(scram_verifier(password))
    )
    try:
        with contextlib.closing(
            psycopg.connect(item.dsn.get_secret_value(), autocommit=True)
        ) as conn:
            conn.execute(statement)
    except psycopg.Error as exc:
        reason = exc.diag.message_primary or type(exc).__name__
        raise EngineError(f"ALTER ROLE {item.role} failed: {reason}") from None


def _manual_steps(
    api: InfisicalApi,
    projects: tuple[str, ...],
    environments: tuple[str, ...],
    rotatable: tuple[RotatableSecret, ...],
) -> list[str]:
    systems = {(r.project, r.environment, r.path, r.key): r.system for r in rotatable}
    steps = []
    for project in projects:
        for environment in environments:
            for folder in api.walk(project, environment).folders:
                for secret in folder.secrets:
                    system = systems.get((project, environment, folder.path, secret.key))
                    if system not in AUTOMATED:
                        where = f"{project}/{environment}:{folder.path} {secret.key}"
                        steps.append(f"{where}: {MANUAL.get(system or '', MANUAL[''])}")
    return steps
