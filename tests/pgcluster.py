"""Scratch PostgreSQL clusters for tests: initdb and pg_ctl as the postgres OS user, free ports."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from tests.services import free_port, wait_for_port
from workers.engines.postgres.cluster import OS_USER, LocalInstance, as_os_user, pg_binary
from workers.engines.postgres.pitr import BIN_ENV

# Small and fast: these clusters hold a few rows and are thrown away.
SCRATCH_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "shared_buffers": "16MB",
    "max_wal_size": "64MB",
    "min_wal_size": "8MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "20",
    "wal_level": "replica",
    # No background commits: tests reason about which commits come before and after a time.
    "autovacuum": "off",
}
WAL_SEGMENT_MB = 1
"""1 MiB segments (initdb --wal-segsize) keep archiving and restores quick."""


def scratch_dir(tag: str) -> Path:
    """A new directory in /tmp owned by postgres (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix=f"kosmos-{tag}-", dir="/tmp"))
    give_to_postgres(path)
    return path


def give_to_postgres(path: Path) -> None:
    """chown a file or directory to the postgres OS user (no-op when not root)."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam(OS_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def write_for_postgres(path: Path, text: str) -> Path:
    """Write a file the postgres user can read (configs for archive/restore commands)."""
    path.write_text(text)
    path.chmod(0o644)
    give_to_postgres(path)
    return path


class PgCluster:
    """One scratch cluster: ``init()``, ``start()``, SQL through psycopg, ``remove()``."""

    def __init__(
        self, root: Path, port: int | None = None, settings: Mapping[str, str] | None = None
    ) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.port = port or free_port()
        self.settings = {**SCRATCH_SETTINGS, **(settings or {})}
        self.instance = LocalInstance(str(self.data_dir), self.port, str(root / "postgres.log"))

    @property
    def dsn(self) -> str:
        """libpq DSN of the cluster's postgres database (trust auth)."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def init(self) -> PgCluster:
        """initdb with trust auth and the scratch settings."""
        subprocess.run(
            as_os_user(
                [
                    pg_binary("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                    f"--wal-segsize={WAL_SEGMENT_MB}",
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.configure(self.settings)
        return self

    def configure(self, settings: Mapping[str, str]) -> None:
        """Append settings to postgresql.conf (a restart or reload applies them)."""
        lines = [f"{key} = '{value}'" for key, value in settings.items()]
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n".join(lines) + "\n")

    def start(self) -> PgCluster:
        """Start and wait until it accepts connections."""
        self.instance.start(f"-k {self.root}")
        wait_for_port(self.port, timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.execute("SELECT 1")
                return self
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown."""
        self.instance.stop()

    def execute(self, query: str, params: Any = None, dbname: str = "postgres") -> list[Any]:
        """Run one statement (autocommit) and return its rows, if any."""
        # make_conninfo quotes the name: a database may be called ``my db`` or ``-x``.
        info = make_conninfo(self.dsn, dbname=dbname)
        with psycopg.connect(info, autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def remove(self) -> None:
        """Stop it (immediate: the archiver need not drain) and delete everything under it."""
        self.instance.stop(mode="immediate")
        shutil.rmtree(self.root, ignore_errors=True)


PG_PREFIX = os.environ.get("KOSMOS_PG_PREFIX", "/opt/kosmos-backup")
"""Where .ci/postgres-user-setup installs (a checkout of its own may name its own)."""
KOSMOS_BIN = f"{PG_PREFIX}/bin/kosmos-backup"
"""Installed by .ci/postgres-user-setup where the postgres user can run it."""
SETUP_SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "postgres-user-setup"
_installed: list[bool] = []


def ensure_postgres_install() -> None:
    """Bring the postgres user's install up to date with this tree (seconds when it already is).

    archive_command runs that copy, not this tree: a stale copy would test old code.
    """
    if _installed:
        return
    done = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{SETUP_SCRIPT} failed:\n{done.stdout}\n{done.stderr}")
    # restore_command names this copy too, not the shared /opt/kosmos-backup of another tree.
    os.environ[BIN_ENV] = KOSMOS_BIN
    _installed.append(True)


CONFIG_TEMPLATE = """\
storage:
  url: s3://{bucket}/kosmos
  endpoint_url: {endpoint}
  region: us-east-1
  access_key_id: test
  secret_access_key: test
  max_attempts: 2
  connect_timeout: 2s
  read_timeout: 20s
components:
  postgres:
    kind: postgres
    dsn: host=127.0.0.1 port={port} user=postgres dbname=postgres
    frequency: 1h
    base_frequency: 1d
    retention: 30d
    keep_last: 1
    data_directory: {data_dir}
    server_name: {server_name}
"""


def archiving_config(
    path: Path, *, endpoint: str, bucket: str, cluster: PgCluster, server_name: str = "pg"
) -> Path:
    """A kosmos-backup config for one scratch cluster, readable by the postgres user."""
    text = CONFIG_TEMPLATE.format(
        bucket=bucket,
        endpoint=endpoint,
        port=cluster.port,
        data_dir=cluster.data_dir,
        server_name=server_name,
    )
    return write_for_postgres(path, text)


def archive_settings(config: Path) -> dict[str, str]:
    """postgresql.conf settings that archive through kosmos-backup wal-push."""
    ensure_postgres_install()
    return {
        "archive_mode": "on",
        "archive_command": f"{KOSMOS_BIN} --config {config} wal-push %p",
        "archive_timeout": "60",
    }


def run_kosmos(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the installed kosmos-backup as the postgres user, as PostgreSQL does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")}
    return subprocess.run(
        as_os_user([KOSMOS_BIN, *args]),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def wait_archived(cluster: PgCluster, timeout: float = 60) -> str:
    """Switch WAL and wait until the archiver reports the closed segment stored."""
    row = cluster.execute("SELECT pg_walfile_name(pg_switch_wal())")
    segment = row[0][0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = cluster.execute("SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver")
        if stats[0][0] is not None and stats[0][0] >= segment:
            return str(segment)
        time.sleep(0.2)
    raise TimeoutError(f"segment {segment} was not archived in {timeout}s: {stats}")
