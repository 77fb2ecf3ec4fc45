"""Health of an etcd component's set-up: TLS files that are missing, endpoints that are away.

The status board probes on every look, so the probe is cheap: a socket connect to each
endpoint (never an etcdctl start, never a TLS handshake), bounded by ``CONNECT_SECONDS``.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

from workers.context import Context
from workers.core.config import EtcdComponent, Settings

CONNECT_SECONDS = 1.0
DEFAULT_PORT = 2379


def unreachable(ctx: Context, component: str) -> str | None:
    """Why none of the component's endpoints accepts a connection, or None when one does."""
    settings = ctx.settings.component(component)
    if not isinstance(settings, EtcdComponent):
        return None
    failures = []
    for endpoint in settings.endpoints:
        problem = _connect(endpoint)
        if problem is None:
            return None
        failures.append(f"{endpoint} ({problem})")
    override = f"KOSMOS__COMPONENTS__{component.upper().replace('-', '_')}__ENDPOINTS"
    return f"unreachable at {', '.join(failures)}; point it elsewhere with {override}='[https://…]'"


def _connect(endpoint: str) -> str | None:
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        return "not a host:port"
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), CONNECT_SECONDS):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def config_problems(settings: Settings, component: str) -> list[tuple[str, str]]:
    """TLS files named in the settings but missing here, as (problem, hint) pairs."""
    found = settings.component(component)
    if not isinstance(found, EtcdComponent):
        return []
    return [
        (
            f"components.{component}.{name}: {value} does not exist",
            "the worker on the K3s server node needs etcd's client TLS files",
        )
        for name in ("cacert", "cert", "key")
        if (value := getattr(found, name)) and not Path(value).exists()
    ]
