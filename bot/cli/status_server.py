"""`up`'s side of the status socket (bot.status_socket): a thread that answers ``status``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import struct
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.status_socket import ANSWER_SECONDS, CONNECT_SECONDS, PROTOCOL, address, socket_path
from workers.context import Context
from workers.local_state import ensure_private_dir

if TYPE_CHECKING:
    from workers.core.config import Settings

MAX_REQUEST = 1 << 20
MAX_KNOWN = 64

log = logging.getLogger(__name__)


class StatusServer(socketserver.UnixStreamServer):
    """Answers ``status`` requests on ``path``, one at a time, with `up`'s warm clients."""

    def __init__(self, path: Path, settings: Settings, work: Context) -> None:
        self.path = path
        self.settings = settings  # as loaded, before `up` chose its Redis
        self.work = work  # this thread's own context: `up`'s settings and Redis
        self.same: set[tuple[Any, ...]] = set()  # requests' inputs known to load self.settings
        ensure_private_dir(path.parent)
        path.unlink(missing_ok=True)  # claimed: the caller checked that nobody answers on it
        with address(path) as where:
            super().__init__(where, _Handler)
        path.chmod(0o600)
        self.inode = path.stat().st_ino
        self.thread = threading.Thread(target=self._run, name="status-socket", daemon=True)

    def _run(self) -> None:
        """Load what an answer needs once (the first would otherwise pay it), then serve."""
        from bot.cli.catalog import status_answer

        try:
            status_answer(self.work, None, as_json=True, check=False)
        except Exception:  # noqa: BLE001 - only a warm-up: a request meets the error itself
            log.debug("status socket: warm-up failed", exc_info=True)
        self.serve_forever(poll_interval=0.2)

    def answer(self, raw: bytes) -> dict[str, Any]:
        """The answer to one request: what the CLI would print, or why the CLI must run."""
        from bot.cli.catalog import status_answer
        from bot.console.terminal import console_for

        request = json.loads(raw)
        if not isinstance(request, dict) or request.get("protocol") != PROTOCOL:
            return _fallback("another version of the request")
        refused = self._refusal(request["config"], request["environ"])
        if refused is not None:
            return _fallback(refused)
        environ = request["environ"]
        terminal = request["terminal"]
        file = _Capture(bool(terminal["tty"]), terminal["encoding"] or "utf-8")
        size = tuple(terminal["size"]) if terminal["size"] else None
        screen = console_for(file, environ, size)  # type: ignore[arg-type]
        done = status_answer(
            self.work,
            request["component"],
            as_json=bool(request["json"]),
            check=bool(request["check"]),
            screen=screen,
        )
        stdout = done.stdout or file.getvalue()
        return {"protocol": PROTOCOL, "stdout": stdout, "stderr": done.stderr, "code": done.code}

    def _refusal(self, config: str | None, environ: dict[str, str]) -> str | None:
        """Why the client's settings are not `up`'s, or None when they are the same.

        Loading them costs more than the answer (YAML, pydantic): inputs that loaded the same
        settings once (the config file's text, the environment) are not loaded again.
        """
        from workers.config_loader import CONFIG_ENV, load_settings

        chosen = config or environ.get(CONFIG_ENV)
        try:
            text = Path(chosen).read_text() if chosen else None
        except (OSError, UnicodeDecodeError):
            return "the configuration does not load"
        inputs = (config, chosen, text, tuple(sorted(environ.items())))
        if inputs in self.same:
            return None
        try:
            settings = load_settings(config, environ)
        except Exception:  # noqa: BLE001 - the CLI reports a broken config properly
            return "the configuration does not load"
        if settings != self.settings:
            return "another configuration"
        # The client found this socket in its state directory: the embedded Redis is ours too.
        if Context(settings).redis_url != self.work.redis_url:
            return "another Redis"
        if len(self.same) >= MAX_KNOWN:
            self.same.clear()
        self.same.add(inputs)
        return None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One request failed outside ``answer`` (its client runs the CLI): a line, no trace."""
        log.warning("status socket: a request failed: %s", sys.exc_info()[1])

    def close(self) -> None:
        """Stop serving and remove the socket file if it is still ours."""
        if self.thread.is_alive():
            self.shutdown()
            self.thread.join()
        self.server_close()
        try:
            if self.path.stat().st_ino == self.inode:
                self.path.unlink()
        except FileNotFoundError:
            pass


class _Handler(socketserver.StreamRequestHandler):
    server: StatusServer
    timeout = ANSWER_SECONDS  # a client that never sends its request cannot hold the socket

    def handle(self) -> None:
        if not _same_user(self.request):
            return
        raw = self.rfile.readline(MAX_REQUEST)
        if not raw.strip():
            return  # a connect and nothing more: another `up` checking whether anyone listens
        try:
            answer = self.server.answer(raw)
        except Exception:  # noqa: BLE001 - the client runs the CLI, which shows the error
            log.exception("status socket: request failed, the client runs the full CLI")
            answer = _fallback("internal error")
        with contextlib.suppress(OSError):  # the client gave up waiting: it runs the CLI
            self.wfile.write(json.dumps(answer).encode())


class _Capture:
    """A text file that answers isatty() and encoding as the client's stdout did."""

    def __init__(self, tty: bool, encoding: str) -> None:
        self.tty = tty
        self.encoding = encoding
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty

    def getvalue(self) -> str:
        return "".join(self.parts)


def _fallback(reason: str) -> dict[str, Any]:
    return {"protocol": PROTOCOL, "fallback": reason}


def _same_user(conn: socket.socket) -> bool:
    """The peer runs as this user (the folder is private already; this says so twice)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def serve_status(settings: Settings, work: Context, environ: Mapping[str, str]) -> StatusServer:
    """Start answering ``status`` for `up` (call ``close()`` when `up` ends).

    Raises OSError when the socket cannot be made (say, a folder that is not ours) and
    FileExistsError when another `up` of this install already answers on it.
    """
    path = socket_path(environ)
    if _answers(path):
        raise FileExistsError(f"another `up` answers status on {path}")
    server = StatusServer(path, settings, Context(work.settings, clock=work.clock))
    server.thread.start()
    return server


def _answers(path: Path) -> bool:
    """Someone listens on ``path`` (a live socket, not a stale file)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(CONNECT_SECONDS)
        try:
            with address(path) as where:
                conn.connect(where)
        except OSError:
            return False
    return True
