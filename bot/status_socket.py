"""`up`'s status socket: ``status`` answered by the running service, in a few milliseconds.

A script or a person polling ``kosmos-backup status`` would otherwise pay the CLI's start-up
(pydantic's config models, redis, psycopg, botocore: half a second) for a few milliseconds of
work. `up` already has all of it loaded, so it listens on a Unix socket in the install's state
directory (``run/status.sock``; the folder 0700, the socket 0600, checked peer uid) and
computes the answer afresh per request with the CLI's own code (``status_answer``); the
server is bot.cli.status_server, this module is the protocol and the client.

The console script's lean path (``lean_status``, standard library only) asks it first. It
sends its arguments, its environment and its terminal; the service answers only when that
environment loads the same settings and Redis as its own, and says ``fallback`` otherwise.
No service, a stale socket file, a refusal, an error or an option the lean path does not
know: the full CLI runs, unchanged, as if the socket were not there.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys

from workers.local_state import state_dir

TYPE_CHECKING = False  # typing itself costs the lean path more than all of its work
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path
    from typing import Any

PROTOCOL = 1
RUN_DIR = "run"
SOCKET_NAME = "status.sock"
CONNECT_SECONDS = 0.5
ANSWER_SECONDS = 5.0
"""The lean path waits this long for an answer, then runs the full CLI (which does the same
work: the time only matters when the service hangs)."""
MAX_ANSWER = 16 << 20
MAX_ADDRESS = 100  # bytes; Linux takes 107 (sun_path)
CONFIG_ENV = "KOSMOS_BACKUP_CONFIG"  # workers.config_loader's, not imported: it loads pydantic


def socket_path(environ: Mapping[str, str]) -> Path:
    """Where `up` of the install this environment names listens for ``status``."""
    return state_dir(environ) / RUN_DIR / SOCKET_NAME


def lean_status(argv: list[str]) -> int | None:
    """Print `up`'s answer to this ``status`` and return its exit code; None: run the CLI."""
    request = status_request(argv, os.environ, os.getcwd())
    if request is None:
        return None
    answer = ask(socket_path(os.environ), request)
    if answer is None:
        return None
    sys.stdout.write(answer["stdout"])
    sys.stdout.flush()
    sys.stderr.write(answer["stderr"])
    return int(answer["code"])


def status_request(argv: list[str], environ: Mapping[str, str], cwd: str) -> dict[str, Any] | None:
    """The request for ``[--config PATH] status [COMPONENT] [--json] [--check]``, else None."""
    args = list(argv)
    config: str | None = None
    if args[:1] == ["--config"] and len(args) >= 2:
        config, args = args[1], args[2:]
    elif args[:1] and args[0].startswith("--config="):
        config, args = args[0].removeprefix("--config="), args[1:]
    if args[:1] != ["status"]:
        return None
    flags = {"--json": False, "--check": False}
    component: str | None = None
    for arg in args[1:]:
        if arg in flags:
            flags[arg] = True
        elif not arg.startswith("-") and component is None:
            component = arg
        else:
            return None  # --help, --, a second component: the CLI says what it means
    env = dict(environ)
    if env.get(CONFIG_ENV):  # click reads it as --config's default; relative to our cwd
        env[CONFIG_ENV] = os.path.join(cwd, env[CONFIG_ENV])
    return {
        "protocol": PROTOCOL,
        "config": os.path.join(cwd, config) if config else None,
        "environ": env,
        "component": component,
        "json": flags["--json"],
        "check": flags["--check"],
        "terminal": _terminal(),
    }


def ask(path: Path, request: dict[str, Any]) -> dict[str, Any] | None:
    """The service's answer to ``request``, or None if there is none to use (for any reason)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(CONNECT_SECONDS)
            with address(path) as where:
                conn.connect(where)
            conn.settimeout(ANSWER_SECONDS)
            conn.sendall(json.dumps(request).encode() + b"\n")
            conn.shutdown(socket.SHUT_WR)
            chunks = []
            received = 0
            while chunk := conn.recv(1 << 16):
                chunks.append(chunk)
                received += len(chunk)
                if received > MAX_ANSWER:
                    return None
        answer = json.loads(b"".join(chunks))
    except (OSError, ValueError):
        return None
    if not isinstance(answer, dict) or answer.get("protocol") != PROTOCOL:
        return None
    shapes = {"stdout": str, "stderr": str, "code": int}
    if not all(isinstance(answer.get(key), kind) for key, kind in shapes.items()):
        return None  # a refusal ({"fallback": why}) or an answer this version cannot read
    return answer


@contextlib.contextmanager
def address(path: Path) -> Iterator[str]:
    """``path`` as a socket address: a Unix socket's path holds 107 bytes, a state directory
    may be deeper (a test's tmp_path), so a long one goes through its open folder in /proc."""
    if len(os.fsencode(path)) < MAX_ADDRESS:
        yield str(path)
        return
    folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{path.name}"
    finally:
        os.close(folder)


def _terminal() -> dict[str, Any]:
    """What rich would find about this process's terminal (see terminal.console_for)."""
    size = None
    for fd in (0, 1, 2):  # rich's order
        try:
            size = tuple(os.get_terminal_size(fd))
        except (OSError, ValueError):
            continue
        break
    return {"tty": sys.stdout.isatty(), "size": size, "encoding": sys.stdout.encoding}
