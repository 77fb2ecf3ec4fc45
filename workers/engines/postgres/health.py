"""Health of a PostgreSQL component's set-up: settings that cannot work, a server that is away.

The status board probes on every look, so the probe is cheap: a socket connect, never a login
(no libpq session, no password sent, no failed-login noise in the server's log), bounded by
``CONNECT_SECONDS``.
"""

from __future__ import annotations

import socket

from psycopg.conninfo import make_conninfo

from workers.context import Context
from workers.core.config import PostgresComponent, Settings
from workers.core.errors import ConfigError
from workers.engines.postgres.conninfo import DEFAULT_PORT, Conninfo
from workers.settings import OVERRIDE_PREFIX

CONNECT_SECONDS = 1.0
SOCKET_DIRS = ("/var/run/postgresql", "/tmp")
"""Where libpq looks for the server's socket when the DSN names no host (Debian's, then its own)."""


def config_problems(settings: Settings, component: str) -> list[tuple[str, str]]:
    """What in the component's settings cannot work, as (problem, hint) pairs."""
    comp = settings.component(component)
    if not isinstance(comp, PostgresComponent) or not comp.continuous:
        return []
    if settings.storage.scheme == "s3":
        return []
    # barman-cloud writes only to object storage: base backups would fail at every start.
    return [
        (
            f"components.{component}.continuous: continuous archiving (WAL, base backups, PITR) "
            f"needs an s3:// store, and storage.url is {settings.storage.scheme}://",
            f"set components.{component}.continuous: false, or storage.url: s3://bucket/prefix",
        )
    ]


def unreachable(ctx: Context, component: str) -> str | None:
    """Why the component's server cannot be reached (DSN shown, password hidden), or None."""
    dsn = getattr(ctx.settings.component(component), "dsn", None)
    if dsn is None:
        return None
    setting = f"components.{component}.dsn"
    try:
        info = Conninfo.parse(dsn.get_secret_value(), setting=setting)
    except ConfigError as exc:
        return exc.message
    failures = []
    for address in addresses(info):
        problem = _connect(address)
        if problem is None:
            return None
        failures.append(problem)
    reason = failures[-1] if failures else "no address to try"
    override = f"{OVERRIDE_PREFIX}COMPONENTS__{component.upper().replace('-', '_')}__DSN"
    return (
        f"unreachable at {shown_dsn(info)} ({reason}); "
        f"point it elsewhere with {override}='host=… port=… user=…'"
    )


def shown_dsn(info: Conninfo) -> str:
    """The connection string as written, with any password replaced by ``***``."""
    hidden = {"password": "***"} if info.password else {}
    return make_conninfo("", **info.params, **hidden)


def addresses(info: Conninfo) -> list[str | tuple[str, int]]:
    """Socket paths and (host, port) pairs libpq would try, in its order."""
    hosts = (info.params.get("hostaddr") or info.params.get("host") or "").split(",")
    ports = (info.params.get("port") or DEFAULT_PORT).split(",")
    found: list[str | tuple[str, int]] = []
    for number, host in enumerate(hosts):
        raw = ports[number] if number < len(ports) else ports[-1]
        port = int(raw) if raw.strip().isdigit() else int(DEFAULT_PORT)
        if not host:
            found += [f"{folder}/.s.PGSQL.{port}" for folder in SOCKET_DIRS]
        elif host.startswith("/"):
            found.append(f"{host}/.s.PGSQL.{port}")
        else:
            found.append((host, port))
    return found


def _connect(address: str | tuple[str, int]) -> str | None:
    try:
        if isinstance(address, str):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(CONNECT_SECONDS)
                sock.connect(address)
        else:
            socket.create_connection(address, CONNECT_SECONDS).close()
    except TimeoutError:
        return f"no answer within {CONNECT_SECONDS:.0f}s"
    except OSError as exc:
        return (exc.strerror or type(exc).__name__).lower()
    return None
