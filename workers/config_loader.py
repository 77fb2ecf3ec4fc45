"""Build a process's Settings: YAML file or embedded defaults, ``${VAR}``, KOSMOS__ overrides."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr, ValidationError

from workers.core.config import Settings
from workers.core.errors import ConfigError
from workers.local_state import demo_approval_key, state_dir

CONFIG_ENV = "KOSMOS_BACKUP_CONFIG"
OVERRIDE_PREFIX = "KOSMOS__"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SLACK_ENV = {
    "bot_token": "SLACK_BOT_TOKEN",
    "signing_secret": "SLACK_SIGNING_SECRET",
    "app_token": "SLACK_APP_TOKEN",
}
_KIND_TAGS = {"postgres", "minio", "etcd", "velero", "infisical"}
# Values under keys named like these are never echoed back in an error message.
_SECRET_WORDS = ("token", "secret", "password", "dsn", "key", "credential")


def default_config_text() -> str:
    """The embedded defaults: the reference page's components on a local directory store."""
    return resources.files("workers").joinpath("defaults.yaml").read_text()


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Load settings from ``path``, ``$KOSMOS_BACKUP_CONFIG`` or the embedded defaults."""
    env = os.environ if environ is None else environ
    chosen = path or env.get(CONFIG_ENV)
    if chosen:
        try:
            text = Path(chosen).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config {chosen}: {exc.strerror}") from exc
        except UnicodeDecodeError:
            raise ConfigError(f"cannot read config {chosen}: it is not UTF-8 text") from None
        origin = str(chosen)
    else:
        settings = parse_settings(default_config_text(), env, origin="embedded defaults")
        return _with_demo_key(settings, env)
    return parse_settings(text, env, origin=origin)


def _with_demo_key(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """The embedded defaults are a complete local demo: restores can be approved at once.

    Only there: a real config without approval_key keeps failing closed.
    """
    if settings.approval_key is not None:
        return settings
    try:
        key = demo_approval_key(state_dir(environ))
    except OSError as exc:
        import structlog  # only here: every command loads settings, few ever log (~100 ms)

        structlog.get_logger().warning("no demo approval key", error=str(exc))
        return settings  # fails closed, as with a config that has none
    return settings.model_copy(update={"approval_key": SecretStr(key)})


def parse_settings(text: str, environ: Mapping[str, str], origin: str = "config") -> Settings:
    """Parse YAML text into Settings; every problem becomes a ConfigError that names the key."""
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{origin}{where}: not valid YAML") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping")
    overrides = _overrides(environ)
    # Overridden keys are not substituted: an override must win even over a ${VAR} that
    # is unset on this machine.
    raw = _substitute(raw, environ, (), skip={path for path, _ in overrides})
    _apply_overrides(raw, overrides, environ)
    _slack_tokens(raw, environ)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc), hint=f"check {origin}") from None


def describe_validation_error(exc: ValidationError) -> str:
    """The first problem as one line: ``components.postgres.retention: '30x' is not a duration``."""
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    if len(loc) >= 3 and loc[0] == "components" and loc[2] in _KIND_TAGS:
        del loc[2]
    key = ".".join(loc) or "(top level)"
    kind = first["type"]
    if kind == "missing":
        problem = "is required"
    elif kind == "extra_forbidden":
        problem = "is not a known setting"
    elif kind == "value_error":
        problem = str(first["ctx"]["error"]) if "ctx" in first else first["msg"]
    elif kind == "union_tag_invalid":
        # The error's input is the whole component mapping (DSNs, tokens): name the tag only.
        tag = first.get("ctx", {}).get("tag", "?")
        problem = f"kind {tag!r} is unknown (use one of {', '.join(sorted(_KIND_TAGS))})"
    elif kind == "union_tag_not_found":
        problem = "needs a 'kind' (postgres, minio, etcd, velero or infisical)"
    else:
        shown = first.get("input")
        visible = isinstance(shown, str | int | float | bool) and not _secret_key(loc)
        value = f"{shown!r}: " if visible else ""
        problem = f"{value}{first['msg'][0].lower()}{first['msg'][1:]}"
    more = len(exc.errors()) - 1
    return f"{key}: {problem}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def _secret_key(loc: list[str]) -> bool:
    return any(word in part.lower() for part in loc for word in _SECRET_WORDS)


def _substitute(
    value: Any,
    environ: Mapping[str, str],
    where: tuple[str, ...],
    skip: Collection[tuple[str, ...]] = (),
) -> Any:
    if where in skip:
        return value
    if isinstance(value, dict):
        return {k: _substitute(v, environ, (*where, str(k)), skip) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, environ, (*where, str(i)), skip) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{'.'.join(where)}: environment variable {name} is not set",
            hint=f"export {name}=… or write ${{{name}:-default}}",
        )

    return _VAR.sub(replace, value)


def _overrides(environ: Mapping[str, str]) -> list[tuple[tuple[str, ...], str]]:
    """``KOSMOS__A__B=v`` variables as ((a, b), name), sorted by name."""
    found = []
    for name in sorted(environ):
        if not name.startswith(OVERRIDE_PREFIX):
            continue
        path = tuple(part.lower() for part in name[len(OVERRIDE_PREFIX) :].split("__"))
        if not all(path):
            raise ConfigError(f"{name}: empty key segment in override")
        found.append((path, name))
    return found


def _apply_overrides(
    raw: dict[str, Any], overrides: list[tuple[tuple[str, ...], str]], environ: Mapping[str, str]
) -> None:
    for path, name in overrides:
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: {'.'.join(path)} does not name a setting")
            node = child
        node[path[-1]] = _override_value(environ[name])


def _override_value(text: str) -> Any:
    # Lists and maps may be written as YAML flow ([a, b]); scalars stay strings so that
    # a password like 0123 is never turned into a number.
    if text.startswith(("[", "{")):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return text
    return text


def _slack_tokens(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    slack = raw.setdefault("slack", {})
    if not isinstance(slack, dict):
        return
    for key, var in _SLACK_ENV.items():
        if not slack.get(key) and environ.get(var):
            slack[key] = environ[var]
