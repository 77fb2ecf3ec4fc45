"""The secrets component's settings, age keys and the rule that its backups are encrypted."""

from __future__ import annotations

from pathlib import Path

from workers.context import Context
from workers.core.config import InfisicalComponent, Settings
from workers.core.errors import ConfigError, EngineError

KIND = "infisical"
BACKUP_KIND = "infisical-export"


def settings_of(ctx: Context, component: str) -> InfisicalComponent:
    """The component's settings, which must be of kind infisical."""
    settings = ctx.settings.component(component)
    if not isinstance(settings, InfisicalComponent):
        raise EngineError(f"component {component} is {settings.kind}, not {KIND}")
    return settings


def recipient_problem(settings: Settings) -> str | None:
    """Why a secrets backup would be refused: it is never stored unencrypted."""
    if not settings.encryption.recipients:
        return "secrets backups are always age-encrypted, and encryption.recipients is empty"
    return None


def require_recipients(settings: Settings) -> None:
    """Refuse a secrets backup that could not be encrypted, before reading any secret."""
    problem = recipient_problem(settings)
    if problem is not None:
        raise ConfigError(problem, hint="add the restorers' age public keys (age1…)")


def identities(settings: Settings) -> list[str]:
    """age identities that can decrypt an export, from ``encryption.identity_file``."""
    path = settings.encryption.identity_file
    if not path:
        return []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ConfigError(
            f"cannot read encryption.identity_file {path}: {exc.strerror}",
            hint="point it at an age identity file readable by this worker",
        ) from None
    return [line.strip() for line in lines if line.strip().startswith("AGE-SECRET-KEY-")]
