"""The barman-cloud command-line tools: where they live, how they are called, what exits mean.

Layout in the bucket: ``s3://<bucket>/<storage prefix>/_barman/<component>/<server_name>/``
holds barman's ``base/<barman id>/`` and ``wals/``. It sits beside, not inside, the
component's own prefix so that the repository's sweep, which deletes backup folders that
have no manifest, never touches barman's objects.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from workers import process
from workers.core.config import PostgresComponent, Settings
from workers.core.errors import ConfigError, EngineError, NotFoundError, StorageUnavailable
from workers.engines.postgres.wal_archive import QUICK_ATTEMPTS, WalArchive

BARMAN_DIR = "_barman"
KIND_BASE = "postgres-base"
"""Manifest kind of a kosmos record that points at one barman base backup."""
# barman-cloud's own exit codes (barman.clients.cloud_cli).
EXIT_OPERATION = 1
EXIT_NETWORK = 2
_DELETED_BACKUP = re.compile(r"/base/([^/'\"]+)/")


def tool(name: str) -> str:
    """A barman-cloud program: beside this interpreter first (a venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name) or name


def barman_version() -> str:
    """The installed barman version, for manifests."""
    try:
        return metadata.version("barman")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class BarmanTarget:
    """One component's barman-cloud destination and the environment its tools need."""

    component: str
    url: str
    key_prefix: str
    server_name: str
    options: tuple[str, ...]
    env: dict[str, str] = field(repr=False)
    endpoint: str

    def describe(self) -> str:
        """Where the archive is, for messages (no credentials)."""
        return f"{self.url}/{self.server_name} at {self.endpoint}"


def postgres_component(settings: Settings, component: str) -> PostgresComponent:
    """The named component, which must be a PostgreSQL one."""
    found = settings.components.get(component)
    if not isinstance(found, PostgresComponent):
        names = [n for n, c in settings.components.items() if isinstance(c, PostgresComponent)]
        raise ConfigError(
            f"{component!r} is not a configured postgres component",
            hint=f"postgres components: {', '.join(names) or 'none'}",
        )
    return found


def default_component(settings: Settings) -> str:
    """The one PostgreSQL component with continuous archiving (wal-push needs no name then)."""
    names = [
        n
        for n, c in settings.components.items()
        if isinstance(c, PostgresComponent) and c.continuous
    ]
    if len(names) != 1:
        raise ConfigError(
            f"{len(names)} postgres components archive WAL; name one",
            hint="pass --component NAME",
        )
    return names[0]


def target_for(settings: Settings, component: str, *, quick: bool = False) -> BarmanTarget:
    """The barman destination of ``component``; ``quick`` bounds retries for archive_command."""
    comp = postgres_component(settings, component)
    storage = settings.storage
    if storage.scheme != "s3":
        raise ConfigError(
            "continuous archiving needs S3 storage (barman-cloud)",
            hint="set storage.url to s3://bucket/prefix",
        )
    key_prefix = "/".join(p for p in (storage.prefix, BARMAN_DIR, component) if p)
    options = ["--cloud-provider", "aws-s3", "--addressing-style", storage.addressing_style]
    options += ["--read-timeout", str(int(storage.read_timeout.total_seconds()))]
    if storage.endpoint_url:
        options += ["--endpoint-url", storage.endpoint_url]
    attempts = min(storage.max_attempts, QUICK_ATTEMPTS) if quick else storage.max_attempts
    env = {
        # boto3 >= 1.36 checksum trailers: OSS and older MinIO refuse them (ARCHITECTURE).
        "AWS_REQUEST_CHECKSUM_CALCULATION": storage.checksums,
        "AWS_RESPONSE_CHECKSUM_VALIDATION": storage.checksums,
        "AWS_MAX_ATTEMPTS": str(attempts),
        "AWS_RETRY_MODE": "standard",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if storage.region:
        env["AWS_DEFAULT_REGION"] = storage.region
    if storage.access_key_id and storage.secret_access_key:
        env["AWS_ACCESS_KEY_ID"] = storage.access_key_id.get_secret_value()
        env["AWS_SECRET_ACCESS_KEY"] = storage.secret_access_key.get_secret_value()
    return BarmanTarget(
        component=component,
        url=f"s3://{storage.bucket}/{key_prefix}",
        key_prefix=key_prefix,
        server_name=comp.server_name,
        options=tuple(options),
        env=env,
        endpoint=storage.endpoint_url or "aws",
    )


def wal_archive(settings: Settings, target: BarmanTarget) -> WalArchive:
    """A read-only view of the target's WAL archive."""
    return WalArchive(settings.storage, target.key_prefix, target.server_name)


def run(
    target: BarmanTarget,
    name: str,
    args: Sequence[str],
    *,
    positional: Sequence[str] = (),
    timeout: float,
    env: dict[str, str] | None = None,
) -> process.Completed:
    """Run one barman-cloud tool against the target; its failures become our errors."""
    argv = [tool(name), *target.options, *args, target.url, target.server_name, *positional]
    done = process.run(argv, env={**target.env, **(env or {})}, timeout=timeout, check=False)
    if done.returncode == 0:
        return done
    last = _last_line(done.stderr_tail) or f"exit status {done.returncode}"
    if done.returncode == EXIT_NETWORK:
        raise StorageUnavailable(
            f"{name}: storage unreachable at {target.endpoint}: {last}",
            hint="check storage.endpoint_url and network",
        )
    raise BarmanFailed(f"{name} failed: {last}", done.returncode, hint=done.stderr_tail[-1500:])


class BarmanFailed(EngineError):
    """A barman-cloud tool exited non-zero; ``returncode`` tells which way."""

    def __init__(self, message: str, returncode: int, hint: str = "") -> None:
        super().__init__(message, hint)
        self.returncode = returncode


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    # "2026-11-25 06:35:48,036 [21864] ERROR: message" -> "message"
    return re.sub(r"^\S+ \S+ \[\d+\] [A-Z]+: ", "", lines[-1])


def show(target: BarmanTarget, backup: str, timeout: float = 120) -> dict[str, Any]:
    """barman's metadata of one backup (by id or name); NotFoundError when it has none."""
    try:
        done = run(
            target,
            "barman-cloud-backup-show",
            ["--format", "json"],
            positional=[backup],
            timeout=timeout,
        )
    except BarmanFailed as exc:
        raise NotFoundError(
            f"barman has no backup {backup} in {target.describe()}", hint=exc.message
        ) from exc
    data = json.loads(done.stdout)
    return dict(next(iter(data.values())))


def list_backups(target: BarmanTarget, timeout: float = 120) -> list[dict[str, Any]]:
    """Every barman backup of the target's server, oldest first."""
    done = run(target, "barman-cloud-backup-list", ["--format", "json"], timeout=timeout)
    return list(json.loads(done.stdout).get("backups_list", []))


def deleted_backup_ids(output: str) -> list[str]:
    """barman ids named in barman-cloud-backup-delete's output (``…/base/<id>/…``)."""
    seen: list[str] = []
    for backup_id in _DELETED_BACKUP.findall(output):
        if backup_id not in seen:
            seen.append(backup_id)
    return seen
