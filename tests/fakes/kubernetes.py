"""A fake Kubernetes API server: a real local HTTP server the kubernetes client talks to.

It keeps namespaced objects in memory by (api path, namespace, plural, name) and serves
the REST verbs the client uses: GET (one and list), POST, PUT, PATCH (JSON merge patch),
DELETE, plus ``/version`` and the ``scale`` subresource of deployments. Deployments get a
status that tests set (ready or not). Every request is recorded. The client reaches it
through a kubeconfig written by :meth:`FakeKubernetes.kubeconfig`.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

_PATH = re.compile(
    r"^/(?P<api>api/v1|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"/namespaces/(?P<namespace>[^/]+)/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>scale|status))?$"
)
_KINDS = {"deployments": "Deployment", "pods": "Pod", "backups": "Backup", "restores": "Restore"}
TOKEN = "fake-kubernetes-token"


class FakeKubernetes:
    """The server, its objects and the requests it received."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeKubernetes:
        """Listen on a free loopback port."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        """The API server's base URL."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def kubeconfig(self, path: Path) -> Path:
        """Write a kubeconfig pointing at this server (token auth) and return its path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # -- objects ---------------------------------------------------------------------------

    def put(self, api: str, namespace: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store an object as the server would after a create."""
        name = body["metadata"]["name"]
        stored = json.loads(json.dumps(body))
        stored.setdefault("apiVersion", api.removeprefix("apis/"))
        stored.setdefault("kind", _KINDS.get(plural, plural[:-1].title()))
        meta = stored["metadata"]
        meta["namespace"] = namespace
        meta.setdefault("uid", f"uid-{namespace}-{name}")
        meta["resourceVersion"] = str(len(self.requests) + 1)
        with self.lock:
            self.objects[(api, namespace, plural, name)] = stored
        return stored

    def add_deployment(
        self, namespace: str, name: str, *, replicas: int = 1, ready: int | None = None
    ) -> dict[str, Any]:
        """A deployment with ``ready`` of ``replicas`` ready (all of them by default)."""
        ready = replicas if ready is None else ready
        return self.put(
            "apis/apps/v1",
            namespace,
            "deployments",
            {
                "metadata": {"name": name, "labels": {"app": name}},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": [{"name": name, "image": f"{name}:test"}]},
                    },
                },
                "status": _deployment_status(replicas, ready),
            },
        )

    def set_ready(self, namespace: str, name: str, ready: int) -> None:
        """Change how many replicas of a deployment are ready."""
        with self.lock:
            obj = self.objects[("apis/apps/v1", namespace, "deployments", name)]
            obj["status"] = _deployment_status(obj["spec"]["replicas"], ready)

    def listed(self, api: str, namespace: str, plural: str) -> Iterator[dict[str, Any]]:
        """Objects of one kind in a namespace."""
        with self.lock:
            items = [
                o
                for (a, ns, p, _), o in sorted(self.objects.items())
                if (a, ns, p) == (api, namespace, plural)
            ]
        yield from items


def _deployment_status(replicas: int, ready: int) -> dict[str, Any]:
    return {
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "updatedReplicas": replicas,
        "observedGeneration": 1,
    }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKubernetes
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``fake.requests`` instead."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, verb: str) -> None:
        path = self.path.split("?", 1)[0]
        self.fake.requests.append((verb, path))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._status(401, "Unauthorized", "no valid bearer token")
            return
        if path == "/version":
            self._json(200, {"major": "1", "minor": "29", "gitVersion": "v1.29.0-fake"})
            return
        match = _PATH.match(path)
        if match is None:
            self._status(404, "NotFound", f"the server could not find {path}")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        self._route(verb, match.groupdict(), body)

    def _route(self, verb: str, parts: dict[str, Any], body: dict[str, Any]) -> None:
        api, namespace, plural, name = (
            parts["api"],
            parts["namespace"],
            parts["plural"],
            parts["name"],
        )
        key = (api, namespace, plural, name or "")
        if name is None:
            if verb == "GET":
                items = list(self.fake.listed(api, namespace, plural))
                kind = _KINDS.get(plural, plural[:-1].title()) + "List"
                self._json(
                    200,
                    {
                        "kind": kind,
                        "apiVersion": api.removeprefix("apis/"),
                        "metadata": {},
                        "items": items,
                    },
                )
            elif verb == "POST":
                if (
                    api,
                    namespace,
                    plural,
                    body.get("metadata", {}).get("name"),
                ) in self.fake.objects:
                    self._status(409, "AlreadyExists", f"{plural} already exists")
                else:
                    self._json(201, self.fake.put(api, namespace, plural, body))
            else:
                self._status(405, "MethodNotAllowed", verb)
            return
        current = self.fake.objects.get(key)
        if current is None:
            self._status(404, "NotFound", f'{plural} "{name}" not found')
            return
        if parts["sub"] == "scale":
            self._scale(verb, current, body)
        elif verb == "GET":
            self._json(200, current)
        elif verb in ("PUT", "PATCH"):
            merged = body if verb == "PUT" else _merge(current, body)
            self._json(200, self.fake.put(api, namespace, plural, merged))
        elif verb == "DELETE":
            with self.fake.lock:
                self.fake.objects.pop(key, None)
            self._json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
        else:
            self._status(405, "MethodNotAllowed", verb)

    def _scale(self, verb: str, current: dict[str, Any], body: dict[str, Any]) -> None:
        if verb in ("PUT", "PATCH"):
            replicas = int(body.get("spec", {}).get("replicas", current["spec"]["replicas"]))
            with self.fake.lock:
                current["spec"]["replicas"] = replicas
                current["status"] = _deployment_status(replicas, replicas)
        meta = current["metadata"]
        self._json(
            200,
            {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                "spec": {"replicas": current["spec"]["replicas"]},
                "status": {"replicas": current["status"].get("replicas", 0)},
            },
        )

    def _status(self, code: int, reason: str, message: str) -> None:
        self._json(
            code,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": message,
                "reason": reason,
                "code": code,
            },
        )

    def _json(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _merge(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    merged = json.loads(json.dumps(current))
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
