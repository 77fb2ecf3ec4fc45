"""Redaction of configured secrets from text that leaves a worker (events, log lines)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, SecretStr

from workers.core.config import Settings

MASK = "***"
_MIN_SECRET = 4  # shorter values would mask ordinary words
_INLINE = re.compile(r"(?i)\b(password|passwd|secret|token)=([^\s'\"]+)")


class Redactor:
    """Replaces every configured secret value, and ``password=…`` pairs, with ``***``."""

    def __init__(self, secrets: set[str]) -> None:
        self.secrets = sorted((s for s in secrets if len(s) >= _MIN_SECRET), key=len, reverse=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        """A redactor for every SecretStr in the settings (and the password inside DSNs)."""
        found = set(_secret_values(settings))
        for value in list(found):
            found.update(match.group(2) for match in _INLINE.finditer(value))
        return cls(found)

    def __call__(self, text: str) -> str:
        """``text`` with secrets masked."""
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return _INLINE.sub(lambda m: f"{m.group(1)}={MASK}", text)


def _secret_values(value: Any) -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_values(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secret_values(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secret_values(item)
