"""A fake Kubernetes API server: a real local HTTP server the kubernetes client talks to.

It keeps namespaced objects in memory by (api path, namespace, plural, name) and serves
the REST verbs the client uses: GET (one, list, and ``?watch=true`` streams from a
resourceVersion), POST, PUT, PATCH (JSON merge patch), DELETE (a namespace too), plus
``/version`` and the ``scale`` subresource of deployments and statefulsets. Workloads get a
status that tests set (ready or not); scaled up, they become ready after ``ready_delay``
seconds unless held in ``never_ready``. ``forbidden`` holds (verb, resource) pairs answered
with a 403 as RBAC words it; ``drop_watches`` cuts that many watch streams mid-way. Every
request is recorded. The client reaches it through :meth:`FakeKubernetes.kubeconfig`.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml

_PATH = re.compile(
    r"^/(?P<api>api/v1|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"/namespaces/(?P<namespace>[^/]+)/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>scale|status))?$"
)
_NAMESPACE = re.compile(r"^/api/v1/namespaces/(?P<name>[^/]+)$")
_KINDS = {
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "pods": "Pod",
    "backups": "Backup",
    "restores": "Restore",
    "schedules": "Schedule",
}
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
Key = tuple[str, str, str, str]
TOKEN = "fake-kubernetes-token"


class FakeKubernetes:
    """The server, its objects and the requests it received."""

    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.revision = 0
        self.events: list[tuple[int, Key, str, dict[str, Any]]] = []
        self.watches: list[dict[str, str]] = []
        self.forbidden: set[tuple[str, str]] = set()
        self.calls: set[tuple[str, str, str]] = set()
        self.drop_watches = 0
        self.drop_after_events = 2
        self.ready_delay = 0.0
        self.never_ready: set[str] = set()
        self._ready_at: dict[Key, float] = {}
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
        key = (api, namespace, plural, name)
        with self.changed:
            self.revision += 1
            meta["resourceVersion"] = str(self.revision)
            kind = "MODIFIED" if key in self.objects else "ADDED"
            self.objects[key] = stored
            self.events.append((self.revision, key, kind, json.loads(json.dumps(stored))))
            self.changed.notify_all()
        return stored

    def remove(self, key: Key) -> None:
        """Delete an object, telling watchers."""
        with self.changed:
            gone = self.objects.pop(key, None)
            if gone is not None:
                self.revision += 1
                self.events.append((self.revision, key, "DELETED", gone))
                self.changed.notify_all()

    def get(self, api: str, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
        """A copy of one stored object, readiness brought up to date."""
        self.refresh()
        with self.lock:
            found = self.objects.get((api, namespace, plural, name))
            return json.loads(json.dumps(found)) if found is not None else None

    def add_deployment(
        self, namespace: str, name: str, *, replicas: int = 1, ready: int | None = None
    ) -> dict[str, Any]:
        """A deployment with ``ready`` of ``replicas`` ready (all of them by default)."""
        return self.add_workload("deployments", namespace, name, replicas=replicas, ready=ready)

    def add_workload(
        self, plural: str, namespace: str, name: str, *, replicas: int = 1, ready: int | None = None
    ) -> dict[str, Any]:
        """A deployment or statefulset with ``ready`` of ``replicas`` ready."""
        ready = replicas if ready is None else ready
        return self.put(
            "apis/apps/v1",
            namespace,
            plural,
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

    def scaled(self, key: Key, replicas: int) -> None:
        """A workload scaled to ``replicas``: ready at once, after the delay, or never."""
        with self.lock:
            current = self.objects[key]
            current["spec"]["replicas"] = replicas
            ready = min(current["status"].get("readyReplicas", 0), replicas)
            current["status"] = _deployment_status(replicas, ready)
            self._ready_at[key] = time.monotonic() + self.ready_delay
        self.refresh()

    def refresh(self) -> None:
        """Workloads whose delay has passed become ready (those in ``never_ready`` never do)."""
        now = time.monotonic()
        with self.lock:
            for key, at in list(self._ready_at.items()):
                obj = self.objects.get(key)
                if obj is None or key[3] in self.never_ready:
                    continue
                if at <= now:
                    replicas = obj["spec"]["replicas"]
                    obj["status"] = _deployment_status(replicas, replicas)
                    del self._ready_at[key]

    def namespace_gone(self, namespace: str) -> None:
        """Delete a namespace: every object in it goes."""
        for key in [k for k in list(self.objects) if k[1] == namespace]:
            self.remove(key)

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
        path, _, query_text = self.path.partition("?")
        query = dict(parse_qsl(query_text))
        self.fake.requests.append((verb, path))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._status(401, "Unauthorized", "no valid bearer token")
            return
        if path == "/version":
            self._json(200, {"major": "1", "minor": "29", "gitVersion": "v1.29.0-fake"})
            return
        self.fake.refresh()
        namespace = _NAMESPACE.match(path)
        if namespace is not None and verb == "DELETE":
            if not self._allowed("delete", "namespaces", "", namespace["name"]):
                return
            self.fake.namespace_gone(namespace["name"])
            self._json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
            return
        match = _PATH.match(path)
        if match is None:
            self._status(404, "NotFound", f"the server could not find {path}")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        parts = match.groupdict()
        resource = parts["plural"] + (f"/{parts['sub']}" if parts["sub"] else "")
        watching = query.get("watch") in ("true", "1", "True")
        rbac_verb = _VERBS.get(verb) or (
            "watch" if watching else "get" if parts["name"] else "list"
        )
        if not self._allowed(rbac_verb, resource, parts["group"] or "", parts["namespace"]):
            return
        if watching:
            self._watch(parts, query)
        else:
            self._route(verb, parts, body)

    def _allowed(self, verb: str, resource: str, group: str, namespace: str) -> bool:
        self.fake.calls.add((group, resource, verb))
        if (verb, resource) not in self.fake.forbidden:
            return True
        self._status(
            403,
            "Forbidden",
            f'{resource} is forbidden: User "system:serviceaccount:kosmos:kosmos-backup" '
            f'cannot {verb} resource "{resource}" in API group "{group}" '
            f'in the namespace "{namespace}"',
        )
        return False

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
                listing = {"resourceVersion": str(self.fake.revision)}
                self._json(
                    200,
                    {
                        "kind": kind,
                        "apiVersion": api.removeprefix("apis/"),
                        "metadata": listing,
                        "items": items,
                    },
                )
            elif verb == "POST":
                if (api, namespace, plural, body.get("metadata", {}).get("name")) in (
                    self.fake.objects
                ):
                    self._status(409, "AlreadyExists", f"{plural} already exists")
                else:
                    self._json(201, self.fake.put(api, namespace, plural, body))
            else:
                self._status(405, "MethodNotAllowed", verb)
            return
        current = self.fake.get(api, namespace, plural, name)
        if current is None:
            self._status(404, "NotFound", f'{plural} "{name}" not found')
            return
        if parts["sub"] == "scale":
            self._scale(verb, key, current, body)
        elif verb == "GET":
            self._json(200, current)
        elif verb in ("PUT", "PATCH"):
            merged = body if verb == "PUT" else _merge(current, body)
            self._json(200, self.fake.put(api, namespace, plural, merged))
        elif verb == "DELETE":
            self.fake.remove(key)
            self._json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
        else:
            self._status(405, "MethodNotAllowed", verb)

    def _scale(self, verb: str, key: Key, current: dict[str, Any], body: dict[str, Any]) -> None:
        if verb in ("PUT", "PATCH"):
            wanted = body.get("spec", {}).get("replicas", current["spec"]["replicas"])
            self.fake.scaled(key, int(wanted))
            current = self.fake.get(*key) or current
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

    def _watch(self, parts: dict[str, Any], query: dict[str, str]) -> None:
        """Stream events after ``resourceVersion`` as chunked JSON lines until the timeout."""
        self.fake.watches.append(dict(query))
        since = int(query.get("resourceVersion") or 0)
        wanted = query.get("fieldSelector", "").removeprefix("metadata.name=")
        scope = (parts["api"], parts["namespace"], parts["plural"])
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 30)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        while True:
            with self.fake.changed:
                news = self._news(since, scope, wanted)
                while not news and time.monotonic() < deadline:
                    self.fake.changed.wait(deadline - time.monotonic())
                    news = self._news(since, scope, wanted)
                drop = (
                    self.fake.drop_watches > 0 and sent + len(news) >= self.fake.drop_after_events
                )
                if drop:
                    self.fake.drop_watches -= 1
            for revision, kind, obj in news:
                line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                since, sent = revision, sent + 1
                if drop and sent >= self.fake.drop_after_events:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)  # cut mid-stream, no last chunk
                    return
            if not news:
                self.wfile.write(b"0\r\n\r\n")
                return

    def _news(
        self, since: int, scope: tuple[str, str, str], name: str
    ) -> list[tuple[int, str, dict[str, Any]]]:
        return [
            (revision, kind, obj)
            for revision, key, kind, obj in self.fake.events
            if revision > since and key[:3] == scope and (not name or key[3] == name)
        ]

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
