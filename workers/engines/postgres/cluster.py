"""A local PostgreSQL instance driven by pg_ctl: start, stop, promote, recovery settings."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

from workers import process
from workers.core.errors import ConflictError, EngineError, KosmosError, NotFoundError, UsageError
from workers.engines.postgres.conninfo import Conninfo

OS_USER = "postgres"
RECOVERY_MARK = "# kosmos-backup recovery settings"
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"
TARGET_NOT_REACHED = "recovery ended before configured recovery target was reached"
STARTUP_GRACE = 15.0


def pg_binary(name: str) -> str:
    """Path of a PostgreSQL server program (pg_ctl, initdb): PATH, else Debian's versioned dir."""
    found = shutil.which(name) or newest_installed(name)
    if not found:
        raise EngineError(f"{name} is not installed", hint="install the postgresql server package")
    return found


def newest_installed(name: str) -> str | None:
    """``name`` from the newest of Debian's versioned PostgreSQL directories, if any."""
    candidates = sorted(glob.glob(f"{PG_BIN_GLOB}/{name}"), key=_version_key)
    return candidates[-1] if candidates else None


def _version_key(path: str) -> float:
    try:
        return float(Path(path).parent.parent.name)
    except ValueError:
        return 0.0


def as_os_user(argv: Sequence[str], user: str = OS_USER) -> list[str]:
    """``argv`` run as the PostgreSQL OS user: pg_ctl and postgres refuse to run as root."""
    if os.geteuid() != 0:
        return list(argv)
    return ["runuser", "-u", user, "--", *argv]


def hand_over(path: str | Path, user: str = OS_USER) -> None:
    """Give a file, or a restored tree, to the PostgreSQL OS user (only needed as root)."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    if not os.path.isdir(path):
        os.chown(path, entry.pw_uid, entry.pw_gid)
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    os.chmod(path, 0o700)


def quote_setting(value: str) -> str:
    """A value quoted for postgresql.conf."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass(frozen=True)
class RecoverySettings:
    """What a restored data directory needs to replay WAL from the archive and promote."""

    restore_command: str
    target_time: datetime | None = None
    target_lsn: str | None = None
    inclusive: bool = True
    port: int | None = None

    def lines(self) -> list[str]:
        """postgresql.auto.conf lines; later lines win, so these override the source's."""
        values: dict[str, str] = {
            "restore_command": self.restore_command,
            # A restored copy must never archive into the source's WAL archive.
            "archive_mode": "off",
            "recovery_target_action": "promote",
            "recovery_target_timeline": "latest",
        }
        if self.target_time is not None:
            values["recovery_target_time"] = self.target_time.isoformat()
        if self.target_lsn is not None:
            values["recovery_target_lsn"] = self.target_lsn
        if not self.inclusive:
            values["recovery_target_inclusive"] = "off"
        if self.port is not None:
            values["port"] = str(self.port)
        return [RECOVERY_MARK, *(f"{key} = {quote_setting(val)}" for key, val in values.items())]


def write_recovery_settings(data_dir: str | Path, settings: RecoverySettings) -> None:
    """Append recovery settings to postgresql.auto.conf and create recovery.signal."""
    data = Path(data_dir)
    _ensure_config_files(data)
    auto = data / "postgresql.auto.conf"
    text = auto.read_text() if auto.exists() else ""
    if RECOVERY_MARK in text:
        text = text[: text.index(RECOVERY_MARK)]
    auto.write_text(text.rstrip("\n") + "\n" + "\n".join(settings.lines()) + "\n")
    (data / "recovery.signal").write_text("")


def _ensure_config_files(data: Path) -> None:
    # Debian keeps postgresql.conf and pg_hba.conf in /etc, outside the backed-up directory.
    conf = data / "postgresql.conf"
    if not conf.exists():
        conf.write_text("listen_addresses = 'localhost'\n")
    hba = data / "pg_hba.conf"
    if not hba.exists():
        hba.write_text(
            "local all all peer\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host all all ::1/128 scram-sha-256\n"
        )


def require_new_data_dir(data_dir: str | Path) -> None:
    """Refuse a data directory that holds anything, above all a running cluster."""
    data = Path(data_dir)
    if (data / "postmaster.pid").exists():
        raise ConflictError(
            f"a PostgreSQL instance uses {data}",
            hint="restores go into a new, empty data directory",
        )
    if data.exists() and (not data.is_dir() or any(data.iterdir())):
        raise UsageError(
            f"{data} is not empty", hint="restores go into a new, empty data directory"
        )


@dataclass(frozen=True)
class LocalInstance:
    """One PostgreSQL data directory on this machine and the port it listens on."""

    data_dir: str
    port: int
    log_file: str

    def _pg_ctl(self, *args: str, timeout: float = 120) -> process.Completed:
        argv = as_os_user([pg_binary("pg_ctl"), "-D", self.data_dir, *args])
        return process.run(argv, timeout=timeout, check=False)

    def start(self, extra_options: str = "") -> None:
        """Start postgres in the background (returns at once; recovery may take long)."""
        options = f"-p {self.port} {extra_options}".strip()
        done = self._pg_ctl("-l", self.log_file, "-o", options, "-W", "start")
        if done.returncode != 0:
            raise EngineError(
                f"pg_ctl could not start {self.data_dir}: {done.stderr_tail or done.stdout!r}",
                hint=self.log_tail(),
            )

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """Stop the instance if it runs."""
        if self.running():
            self._pg_ctl("-m", mode, "-w", "-t", str(int(timeout)), "stop", timeout=timeout + 10)

    def promote(self) -> None:
        """End recovery now (when recovery paused instead of promoting)."""
        done = self._pg_ctl("-w", "promote")
        if done.returncode != 0:
            raise EngineError(f"pg_ctl promote failed: {done.stderr_tail}", hint=self.log_tail())

    def _pid_file(self) -> list[str]:
        try:
            return Path(self.data_dir, "postmaster.pid").read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            return []

    def running(self) -> bool:
        """Whether a postmaster runs on this data directory (its pid file names a live pid)."""
        lines = self._pid_file()
        if not lines or not lines[0].strip().isdigit():
            return False
        try:
            os.kill(int(lines[0]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def status(self) -> str | None:
        """The postmaster's own state line: starting, standby, ready or stopping (or None)."""
        lines = self._pid_file()
        return lines[7].strip() if len(lines) >= 8 and self.running() else None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the server log, for messages."""
        try:
            text = Path(self.log_file).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def log_text(self, since: int = 0) -> str:
        """The server log from byte ``since`` (a restore's log is small)."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(since)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def log_size(self) -> int:
        """Bytes in the server log now: where the next start's lines begin."""
        try:
            return os.path.getsize(self.log_file)
        except OSError:
            return 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a scratch instance)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TargetNotReached(NotFoundError):
    """Replay ran out of archived WAL before the recovery target."""


PROMOTION_POLL = 0.1
"""How often a restore looks for the end of recovery (a pid-file read; a connection once
the instance accepts them): a restore's whole duration is measured up to this point."""


def wait_for_promotion(
    instance: LocalInstance, info: Conninfo, timeout: float, log_from: int = 0
) -> None:
    """Block until recovery ends and the instance accepts writes; explain a stop.

    Reads the postmaster's pid file rather than connecting while it starts: no log noise,
    no backend forked per poll. ``log_from``: where this start's lines begin in the log.
    """
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        status = instance.status()
        if status is None:
            # pg_ctl -W returns before the postmaster writes its pid file: allow it a moment.
            if time.monotonic() - started > STARTUP_GRACE or _has_exited(instance, log_from):
                raise _why_stopped(instance, log_from)
        elif status in ("ready", "standby"):
            state = _probe(info)
            if state is not None and not state[0]:
                return
            if state is not None and state[1]:
                instance.promote()
        time.sleep(PROMOTION_POLL)
    raise EngineError(
        f"recovery of {instance.data_dir} did not finish in {timeout:.0f}s",
        hint=instance.log_tail(),
    )


def _has_exited(instance: LocalInstance, log_from: int) -> bool:
    log = instance.log_text(log_from)
    return "database system is shut down" in log or "FATAL" in log or "PANIC" in log


def _probe(info: Conninfo) -> tuple[bool, bool] | None:
    """(in recovery, replay paused), or None while the instance does not accept connections."""
    try:
        with psycopg.connect(info.client_dsn(), connect_timeout=3, autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery(),"
                " CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END"
            ).fetchone()
    except psycopg.OperationalError:
        return None
    assert row is not None
    return bool(row[0]), bool(row[1])


def _why_stopped(instance: LocalInstance, log_from: int = 0) -> KosmosError:
    log = instance.log_text(log_from)
    if TARGET_NOT_REACHED in log:
        return TargetNotReached(
            "replay ran out of archived WAL before the recovery target",
            hint=instance.log_tail(),
        )
    fatal = [line for line in log.splitlines() if "FATAL" in line or "PANIC" in line]
    reason = fatal[-1].split(":", 3)[-1].strip() if fatal else "it exited"
    return EngineError(
        f"the restored instance stopped during recovery: {reason}", hint=instance.log_tail()
    )
