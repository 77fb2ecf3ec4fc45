"""Test harness for jobs: configs on disk, worker/scheduler processes, sample databases."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
import redis as redis_lib
import yaml
from psycopg import sql

from tests.conftest import PG_DSN, db_prefix
from tests.sync import wait_until as wait_until  # the one copy; re-exported for callers
from workers.config_loader import CONFIG_ENV, load_settings
from workers.core.config import Settings
from workers.core.events import Event
from workers.state.redis_state import RedisState
from workers.storage.configured import open_repository
from workers.storage.repository import Repository

PREFIX = db_prefix("kb_c_")
SMALL_SQL = """
CREATE TABLE items (id int PRIMARY KEY, name text, added timestamptz DEFAULT now());
INSERT INTO items (id, name) SELECT g, 'item ' || g FROM generate_series(1, 2000) AS g;
"""
BIG_SQL = """
CREATE TABLE blobs (id int PRIMARY KEY, body bytea);
ALTER TABLE blobs ALTER COLUMN body SET STORAGE EXTERNAL;
"""
BIG_MIB = 24
T = TypeVar("T")


# -- PostgreSQL ---------------------------------------------------------------------------------


def admin(dbname: str = "postgres") -> psycopg.Connection[Any]:
    """An autocommit connection to the machine's PostgreSQL."""
    return psycopg.connect(f"{PG_DSN} dbname={dbname}", autocommit=True)


def create_database(tag: str, script: str) -> str:
    """A new database named with our prefix, filled by ``script``."""
    name = f"{PREFIX}{tag}_{secrets.token_hex(3)}"
    with admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with admin(name) as conn:
        conn.execute(script)  # type: ignore[arg-type]
    return name


def fill_random(name: str, mib: int) -> None:
    """Add ``mib`` MiB of random (incompressible) rows to ``blobs``: the dump is as large."""
    with (
        admin(name) as conn,
        conn.cursor() as cur,
        cur.copy("COPY blobs (id, body) FROM STDIN") as copy,
    ):
        for row in range(mib * 8):
            copy.write_row((row, os.urandom(128 * 1024)))


def drop_database(name: str) -> None:
    """Drop one of our databases, kicking out sessions."""
    with admin() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# -- configuration ------------------------------------------------------------------------------


def s3_storage(endpoint: str, bucket: str) -> dict[str, Any]:
    """Storage settings for a moto bucket (small parts, few botocore attempts)."""
    return {
        "url": f"s3://{bucket}/kosmos",
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "access_key_id": "test",
        "secret_access_key": "test",
        "max_attempts": 2,
        "part_size_mib": 5,
        "max_concurrency": 2,
        "connect_timeout": "5s",
        "read_timeout": "20s",
    }


def write_config(
    path: Path,
    *,
    storage: dict[str, Any],
    redis_url: str,
    database: str,
    jobs: dict[str, Any] | None = None,
    postgres: dict[str, Any] | None = None,
    extra: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """A config file with one postgres component dumping ``database`` (plus ``extra``)."""
    component = {
        "kind": "postgres",
        "dsn": f"{PG_DSN} dbname=postgres",
        "databases": [database],
        "continuous": False,
        "frequency": "1h",
        "retention": "30d",
        **(postgres or {}),
    }
    doc = {
        "storage": storage,
        "redis": {"url": redis_url},
        "jobs": {
            "heartbeat": "2s",
            "abandoned_after": "12s",
            "scheduler_tick": "1s",
            **(jobs or {}),
        },
        "components": {"postgres": component, **(extra or {})},
        "slack": {"channel": "#kosmos-ops", "alert_channel": "#kosmos-alerts"},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def settings_of(config: Path) -> Settings:
    """The settings a worker started with ``config`` sees (no KOSMOS__ overrides)."""
    return load_settings(config, environ={})


# -- processes ----------------------------------------------------------------------------------


def child_env(config: Path) -> dict[str, str]:
    """The environment of a worker or scheduler: ours, minus test overrides, plus the config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")}
    env[CONFIG_ENV] = str(config)
    return env


class Process:
    """A ``kosmos-backup`` subprocess in its own session, logging to a file."""

    def __init__(self, config: Path, args: list[str], log: Path) -> None:
        self.config = config
        self.args = args
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        """Start it (once: a second start would orphan the first process)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                ["kosmos-backup", *self.args],
                env=child_env(self.config),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

    def kill(self, *extra_pids: int) -> None:
        """SIGKILL it, its process group (RQ's scheduler child) and ``extra_pids`` (a horse)."""
        assert self.proc is not None
        for pid in extra_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Stop it now: two SIGTERMs make RQ kill its work horse too (a cold shutdown)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for _ in range(2):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            time.sleep(0.3)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        """What it logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def worker(
    config: Path, tmp: Path, *args: str, name: str | None = None, start: bool = True
) -> Process:
    """A ``kosmos-backup worker`` (default queue unless ``--queues`` is given)."""
    name = name or f"w-{secrets.token_hex(3)}"
    argv = ["worker", "--name", name, *args]
    if "--queues" not in args:
        argv += ["--queues", "kosmos-default"]
    process = Process(config, argv, tmp / f"{name}.log")
    return process.start() if start else process


def scheduler(config: Path, tmp: Path, tag: str = "s", start: bool = True) -> Process:
    """A ``kosmos-backup scheduler``."""
    process = Process(config, ["scheduler"], tmp / f"scheduler-{tag}.log")
    return process.start() if start else process


@contextlib.contextmanager
def running(*processes: Process) -> Iterator[None]:
    """Stop the processes when the block ends, whatever happened."""
    try:
        yield
    finally:
        for process in processes:
            process.stop()


def run_cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``kosmos-backup`` once with this config."""
    return subprocess.run(
        ["kosmos-backup", *args],
        env=child_env(config),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- observing ----------------------------------------------------------------------------------


def state_of(settings: Settings) -> RedisState:
    """The RedisState these settings point at."""
    return RedisState(redis_lib.Redis.from_url(settings.redis.url), settings.redis.key_prefix)


def events_of(settings: Settings, op_id: str) -> list[Event]:
    """Every event of ``op_id`` still on the stream, progress included, in order."""
    state = state_of(settings)
    return [e for _id, e in state.read_events("0-0", count=100_000) if e.op_id == op_id]


def ended(settings: Settings, op_id: str) -> Callable[[], dict[str, Any] | None]:
    """A probe: the op record once it is finished or failed."""

    def probe() -> dict[str, Any] | None:
        record = state_of(settings).operation(op_id)
        return record if record and record["state"] in ("finished", "failed") else None

    return probe


def repository(settings: Settings, clock: Callable[[], datetime] | None = None) -> Repository:
    """The repository the workers write to (optionally with a clock set in the past)."""
    return open_repository(settings, clock) if clock else open_repository(settings)


def seed_backup(settings: Settings, component: str, started: datetime) -> str:
    """Commit a tiny backup that started at ``started`` (the catalog's view of the past)."""
    repo = repository(settings, clock=lambda: started)
    with repo.begin(component, "postgres-logical") as writer:
        writer.write("seed.dump", [b"seed"], compress=False, encrypt=False)
        return writer.commit(source={"seeded": True}).id


# -- fixtures (a plugin of tests/conftest.py: every test module may ask for them) ----------------


@pytest.fixture(scope="session")
def small_db() -> Iterator[str]:
    """A small database (2000 rows) dumped in well under a second."""
    name = create_database("small", SMALL_SQL)
    yield name
    drop_database(name)


Stack = Callable[..., tuple[Path, Settings]]
"""``stack(**write_config_options) -> (config path, settings)``."""


@pytest.fixture
def small_stack(
    tmp_path: Path,
    s3_server: Any,
    bucket: str,
    redis_url: str,
    small_db: str,
) -> Stack:
    """A config on the moto bucket, the test Redis and ``small_db``, written on demand."""

    def build(**options: Any) -> tuple[Path, Settings]:
        config = write_config(
            tmp_path / "kosmos.yaml",
            storage=s3_storage(s3_server.url, bucket),
            redis_url=redis_url,
            database=small_db,
            **options,
        )
        return config, settings_of(config)

    return build


@pytest.fixture(scope="session")
def big_db() -> Iterator[str]:
    """~24 MiB of incompressible rows: through a throttled proxy its upload lasts seconds."""
    name = create_database("big", BIG_SQL)
    fill_random(name, BIG_MIB)
    yield name
    drop_database(name)
