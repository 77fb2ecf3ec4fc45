"""Infisical through its official SDK (universal auth): walk, read and write secrets.

The SDK's own cache is off: an export must see the server as it is, and a cache would keep
values in memory longer than the run needs. Vendor errors become EngineErrors that carry
the API's message and status, never a request body (which may hold a value).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from workers.core.config import InfisicalComponent
from workers.core.errors import ConfigError, EngineError, NotFoundError, UsageError
from workers.engines.infisical.document import EnvironmentExport, Folder, SecretRecord, Tag


def join_path(parent: str, name: str) -> str:
    """A folder path below ``parent``: ``/`` + ``db`` -> ``/db``."""
    return "/" + "/".join(p for p in f"{parent}/{name}".split("/") if p)


@contextlib.contextmanager
def api_errors(what: str) -> Iterator[None]:
    """Translate the SDK's errors into ours, naming what was being done."""
    from infisical_sdk.infisical_requests import APIError, InfisicalError
    from requests.exceptions import RequestException

    try:
        yield
    except APIError as exc:
        message = str(exc.response.get("message") or "error") if exc.response else "error"
        kind = NotFoundError if exc.status_code == 404 else EngineError
        raise kind(
            f"Infisical {what}: {message} (HTTP {exc.status_code})",
            hint="check the project id, environment slug and the identity's access",
        ) from None
    except (InfisicalError, RequestException, OSError) as exc:
        raise EngineError(
            f"Infisical {what}: {type(exc).__name__}", hint="is api_url reachable?"
        ) from None


class InfisicalApi:
    """One logged-in session against one Infisical instance."""

    def __init__(self, settings: InfisicalComponent) -> None:
        from infisical_sdk import InfisicalSDKClient

        if settings.client_id is None or settings.client_secret is None:
            raise ConfigError(
                "Infisical needs a universal auth client id and secret",
                hint="set client_id and client_secret (e.g. ${INFISICAL_CLIENT_ID})",
            )
        self.settings = settings
        self.client = InfisicalSDKClient(host=settings.api_url, cache_ttl=None)  # type: ignore[arg-type]
        with api_errors("login"):
            self.client.auth.universal_auth.login(
                settings.client_id.get_secret_value(), settings.client_secret.get_secret_value()
            )

    def close(self) -> None:
        """Release the session."""
        self.client.close()
        self.client.api.session.close()

    def __enter__(self) -> InfisicalApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------

    def child_folders(self, project: str, environment: str, path: str) -> list[str]:
        """Names of the folders directly below ``path``."""
        with api_errors(f"list folders of {project}/{environment}:{path}"):
            found = self.client.folders.list_folders(
                project_id=project, environment_slug=environment, path=path
            )
        return sorted(folder.name for folder in found.folders)

    def secrets_at(self, project: str, environment: str, path: str) -> list[SecretRecord]:
        """The secrets directly in one folder, references left unexpanded, imports left out."""
        with api_errors(f"list secrets of {project}/{environment}:{path}"):
            found = self.client.secrets.list_secrets(
                environment_slug=environment,
                secret_path=path,
                project_id=project,
                expand_secret_references=False,
                view_secret_value=True,
                recursive=False,
                include_imports=False,
            )
        return sorted((_record(secret) for secret in found.secrets), key=lambda r: r.key)

    def walk(self, project: str, environment: str, root: str = "/") -> EnvironmentExport:
        """Every folder from ``root`` down and its secrets (breadth first)."""
        folders: list[Folder] = []
        queue = [root]
        while queue:
            path = queue.pop(0)
            folders.append(
                Folder(path=path, secrets=tuple(self.secrets_at(project, environment, path)))
            )
            queue += [
                join_path(path, name) for name in self.child_folders(project, environment, path)
            ]
        return EnvironmentExport(project=project, environment=environment, folders=tuple(folders))

    def current(
        self, project: str, environment: str, paths: list[str]
    ) -> dict[str, dict[str, SecretRecord]]:
        """The secrets now in each of ``paths`` that exists (path -> key -> record)."""
        try:
            self.child_folders(project, environment, "/")  # every environment has a root
        except NotFoundError as exc:
            raise UsageError(
                f"Infisical has no environment {environment} in project {project}",
                hint=f"create it first, or choose another target ({exc.message})",
            ) from None
        found: dict[str, dict[str, SecretRecord]] = {}
        for path in paths:
            with contextlib.suppress(NotFoundError):  # a folder not there yet
                found[path] = {r.key: r for r in self.secrets_at(project, environment, path)}
        return found

    # -- writing ---------------------------------------------------------------------------

    def ensure_folder(self, project: str, environment: str, path: str) -> None:
        """Create ``path`` and any missing parents."""
        parent = "/"
        for name in [p for p in path.split("/") if p]:
            if name not in self.child_folders(project, environment, parent):
                with api_errors(f"create folder {join_path(parent, name)}"):
                    self.client.folders.create_folder(
                        name=name, environment_slug=environment, project_id=project, path=parent
                    )
            parent = join_path(parent, name)

    def write_secret(
        self,
        target: tuple[str, str],
        path: str,
        record: SecretRecord,
        *,
        create: bool,
        tag_ids: list[str] | None = None,
    ) -> None:
        """Create or update one secret with the record's value, comment and tags."""
        project, environment = target
        args: dict[str, Any] = {
            "secret_path": path,
            "environment_slug": environment,
            "project_id": project,
            "secret_value": record.value,
            "secret_comment": record.comment,
            "skip_multiline_encoding": record.skip_multiline,
            "tags_ids": tag_ids,
        }
        verb = "create" if create else "update"
        with api_errors(f"{verb} secret {record.key} in {project}/{environment}:{path}"):
            if create:
                self.client.secrets.create_secret_by_name(secret_name=record.key, **args)
            else:
                self.client.secrets.update_secret_by_name(current_secret_name=record.key, **args)

    def set_value(self, target: tuple[str, str], path: str, key: str, value: str) -> None:
        """Replace only the value of an existing secret (a rotation)."""
        project, environment = target
        with api_errors(f"update secret {key} in {project}/{environment}:{path}"):
            self.client.secrets.update_secret_by_name(
                current_secret_name=key,
                secret_path=path,
                environment_slug=environment,
                project_id=project,
                secret_value=value,
            )


def _record(secret: Any) -> SecretRecord:
    return SecretRecord(
        key=secret.secretKey,
        value=secret.secretValue or "",
        comment=secret.secretComment or "",
        tags=tuple(_tag(tag) for tag in secret.tags or ()),
        skip_multiline=bool(secret.skipMultilineEncoding),
    )


def _tag(tag: Any) -> Tag:
    # The SDK declares SecretTag objects but hands over the API's dicts as they came.
    if isinstance(tag, dict):
        return Tag(id=tag["id"], slug=tag["slug"])
    return Tag(id=tag.id, slug=tag.slug)


def unreachable(settings: Any) -> str | None:
    """Why the API's host does not answer a TCP connect (no login); None when it does."""
    import socket
    from urllib.parse import urlsplit

    api_url = getattr(settings, "api_url", None)
    if not api_url:
        return None
    parts = urlsplit(api_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=2):
            return None
    except OSError as exc:
        return f"Infisical unreachable at {parts.hostname}:{port} ({exc.strerror or exc})"
