"""Whether the Velero component's API server can be reached, and settings that cannot work.

Cheap, for the status board that asks on every look: the kubeconfig is read as YAML and its
server's port connected to, without loading the kubernetes client or logging in.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from workers.context import Context
from workers.core.config import Settings, VeleroComponent
from workers.engines.velero.objects import check_namespace

CONNECT_TIMEOUT = 2.0


def server_of(settings: VeleroComponent) -> tuple[str, int] | str:
    """The API server's (host, port), or why there is none."""
    if settings.kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        return os.environ["KUBERNETES_SERVICE_HOST"], int(port) if port.isdigit() else 443
    path = Path(settings.kubeconfig or Path.home() / ".kube" / "config").expanduser()
    try:
        config = yaml.safe_load(path.read_text()) or {}
        current = config.get("current-context")
        context = next(c["context"] for c in config["contexts"] if c["name"] == current)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        url = urlsplit(str(cluster["server"]))
    except OSError as exc:
        return f"no kubeconfig at {path} ({exc.strerror or exc})"
    except (yaml.YAMLError, KeyError, TypeError, StopIteration):
        return f"kubeconfig {path} names no server for its current context"
    if url.hostname is None:
        return f"kubeconfig {path}: server {url.geturl()!r} has no host"
    return url.hostname, url.port or (443 if url.scheme == "https" else 80)


def unreachable(ctx: Context, component: str) -> str | None:
    """Why the component's API server cannot be reached now; None when it answers."""
    settings = ctx.settings.component(component)
    if not isinstance(settings, VeleroComponent):
        return None
    server = server_of(settings)
    if isinstance(server, str):
        return server
    host, port = server
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return None
    except OSError as exc:
        return f"kubernetes API {host}:{port} unreachable: {exc.strerror or exc}"


def config_problems(settings: Settings, component: str) -> list[tuple[str, str]]:
    """Settings that validate but cannot work: no namespaces, or names Kubernetes refuses."""
    found = settings.components.get(component)
    if not isinstance(found, VeleroComponent):
        return []
    path = f"components.{component}"
    if not found.namespaces:
        return [(f"{path}.namespaces", "no namespaces: a Velero backup would hold nothing")]
    problems = []
    for name in (*found.namespaces, found.velero_namespace):
        try:
            check_namespace(name)
        except ValueError as exc:
            problems.append((f"{path}.namespaces", str(exc)))
    return problems
