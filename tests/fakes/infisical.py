"""A fake Infisical API: a real local HTTP server that the official SDK (infisicalsdk) talks to.

It serves what the engine calls: universal-auth login, folders (list, create) and raw
secrets (list by path, create, update), with the real API's shapes and its refusals (an
unknown token, a missing folder, a secret that exists or does not). Projects hold
environments, environments hold folders by path, folders hold secrets by key. Every request
is recorded without its body, so a test can see what was called but no value.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

NOW = "2026-01-01T00:00:00.000Z"


@dataclass
class Environment:
    """One environment of a project: folder paths, and the secrets in each by key."""

    folders: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {"/": {}})


class FakeInfisical:
    """The server, its projects and the requests it received."""

    def __init__(self, client_id: str = "fake-client-id", client_secret: str = "") -> None:
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_hex(16)
        self.projects: dict[str, dict[str, Environment]] = {}
        self.tags: dict[str, dict[str, dict[str, str]]] = {}
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeInfisical:
        """Listen on a free loopback port."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        """The API's base URL."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- state for tests -------------------------------------------------------------------

    def add_project(self, project: str, *environments: str) -> None:
        """A project with the given (empty) environments."""
        with self.lock:
            envs = self.projects.setdefault(project, {})
            for slug in environments:
                envs.setdefault(slug, Environment())

    def add_tag(self, project: str, slug: str) -> str:
        """A tag of the project; returns its id."""
        tag = {"id": uuid.uuid4().hex, "slug": slug, "name": slug, "color": "#000000"}
        self.tags.setdefault(project, {})[tag["id"]] = tag
        return tag["id"]

    def put_secret(
        self,
        project: str,
        environment: str,
        path: str,
        key: str,
        value: str,
        *,
        comment: str = "",
        tag_ids: tuple[str, ...] = (),
    ) -> None:
        """Create or replace a secret, creating its folders as needed."""
        with self.lock:
            env = self.projects[project][environment]
            parts = [p for p in path.split("/") if p]
            for depth in range(len(parts) + 1):
                env.folders.setdefault("/" + "/".join(parts[:depth]), {})
            env.folders[_norm(path)][key] = _secret(project, environment, path, key, value)
            env.folders[_norm(path)][key].update(secretComment=comment, tagIds=list(tag_ids))

    def value(self, project: str, environment: str, path: str, key: str) -> str:
        """The current value of a secret."""
        secret: str = self.projects[project][environment].folders[_norm(path)][key]["secretValue"]
        return secret

    def keys(self, project: str, environment: str, path: str = "/") -> set[str]:
        """The secret keys in one folder."""
        return set(self.projects[project][environment].folders.get(_norm(path), {}))

    # -- the API ---------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], body: dict[str, Any], token: str
    ) -> tuple[int, dict[str, Any]]:
        """Serve one request: (status, JSON body)."""
        self.requests.append((method, path))
        if path == "/api/v1/auth/universal-auth/login" and method == "POST":
            return self._login(body)
        if token not in self.tokens:
            return 401, {"message": "Token missing or invalid", "statusCode": 401}
        with self.lock:
            if path == "/api/v2/folders":
                return self._folders(method, query, body)
            if path.startswith("/api/v3/secrets/raw"):
                name = unquote(path[len("/api/v3/secrets/raw") :].lstrip("/"))
                return self._secrets(method, name, query, body)
        return 404, {"message": f"Route {method}:{path} not found", "statusCode": 404}

    def _login(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("clientId") != self.client_id or body.get("clientSecret") != self.client_secret:
            return 401, {"message": "Invalid credentials", "statusCode": 401}
        token = secrets.token_hex(16)
        self.tokens.add(token)
        return 200, {
            "accessToken": token,
            "expiresIn": 7200,
            "accessTokenMaxTTL": 7200,
            "tokenType": "Bearer",
        }

    def _env(self, project: str | None, slug: str | None) -> Environment | None:
        return self.projects.get(project or "", {}).get(slug or "")

    def _folders(
        self, method: str, query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        source = query if method == "GET" else body
        env = self._env(source.get("projectId"), source.get("environment"))
        if env is None:
            return 404, {"message": "Environment not found", "statusCode": 404}
        parent = _norm(source.get("path", "/"))
        if parent not in env.folders:
            return 404, {"message": f"Folder with path '{parent}' not found", "statusCode": 404}
        if method == "GET":
            names = sorted(
                p.rsplit("/", 1)[1] for p in env.folders if p != "/" and _parent(p) == parent
            )
            return 200, {"folders": [_folder(n, parent) for n in names]}
        if method == "POST":
            child = _norm(f"{parent}/{body['name']}")
            if child in env.folders:
                return 400, {"message": "Folder already exists", "statusCode": 400}
            env.folders[child] = {}
            return 200, {"folder": {**_folder(body["name"], parent), "path": child}}
        return 405, {"message": "method not allowed", "statusCode": 405}

    def _secrets(
        self, method: str, name: str, query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        source = query if method == "GET" else body
        project = source.get("workspaceId") or ""
        env = self._env(project, source.get("environment"))
        if env is None:
            return 404, {"message": "Environment not found", "statusCode": 404}
        path = _norm(source.get("secretPath", "/"))
        folder = env.folders.get(path)
        if folder is None:
            return 404, {"message": f"Folder with path '{path}' not found", "statusCode": 404}
        if method == "GET" and not name:
            return 200, {"secrets": [self._shown(project, s) for s in folder.values()]}
        if method == "POST":
            if name in folder:
                return 400, {"message": "Secret already exist", "statusCode": 400}
            folder[name] = _secret(project, source["environment"], path, name, "")
        elif name not in folder:
            return 404, {"message": f"Secret with name '{name}' not found", "statusCode": 404}
        if method in ("POST", "PATCH"):
            folder[name] = self._changed(folder[name], body)
        return 200, {"secret": self._shown(project, folder[name])}

    @staticmethod
    def _changed(secret: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        changed = dict(secret, version=secret["version"] + 1)
        for field_name in ("secretValue", "secretComment", "skipMultilineEncoding"):
            if field_name in body:
                changed[field_name] = body[field_name]
        if "tagIds" in body:
            changed["tagIds"] = list(body["tagIds"])
        return changed

    def _shown(self, project: str, secret: dict[str, Any]) -> dict[str, Any]:
        tags = self.tags.get(project, {})
        shown = {k: v for k, v in secret.items() if k != "tagIds"}
        return {**shown, "tags": [tags[i] for i in secret.get("tagIds", []) if i in tags]}


def _norm(path: str) -> str:
    return "/" + "/".join(p for p in path.split("/") if p)


def _parent(path: str) -> str:
    return _norm(path.rsplit("/", 1)[0])


def _folder(name: str, parent: str) -> dict[str, Any]:
    return {
        "id": uuid.uuid5(uuid.NAMESPACE_URL, f"{parent}/{name}").hex,
        "name": name,
        "createdAt": NOW,
        "updatedAt": NOW,
        "envId": "env",
        "version": 1,
    }


def _secret(project: str, environment: str, path: str, key: str, value: str) -> dict[str, Any]:
    ident = uuid.uuid4().hex
    return {
        "id": ident,
        "_id": ident,
        "workspace": project,
        "environment": environment,
        "version": 1,
        "type": "shared",
        "secretKey": key,
        "secretValue": value,
        "secretComment": "",
        "createdAt": NOW,
        "updatedAt": NOW,
        "secretPath": _norm(path),
        "skipMultilineEncoding": False,
        "tagIds": [],
    }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeInfisical

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        status, answer = self.fake.handle(self.command, parts.path, query, body, token)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a test reads ``fake.requests`` instead."""
