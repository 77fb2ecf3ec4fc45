"""The Kubernetes API as the Velero engine uses it: Velero's objects, workloads and their scale.

One ``Cluster`` per operation, built from the component's kubeconfig (or the pod's service
account). Every call goes through :func:`kube_errors`, which turns the client's exceptions
into the project's: a 403 names the verb and resource the chart's Role must grant.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from workers.context import Context
from workers.core.config import VeleroComponent
from workers.core.errors import ConfigError, ConflictError, EngineError, NotFoundError
from workers.engines.velero.objects import GROUP, VERSION

RBAC_HINT = "grant it in the chart's Role (helm/kosmos-backup/templates/rbac.yaml)"
WORKLOADS = {"deployments": "Deployment", "statefulsets": "StatefulSet"}
_WATCH_WINDOW = 60
_DROPS_WITHOUT_NEWS = 5


@contextlib.contextmanager
def kube_errors(verb: str, resource: str, namespace: str) -> Iterator[None]:
    """Translate the client's failures of ``verb`` on ``resource`` into our errors."""
    where = f"{resource} in namespace {namespace}"
    try:
        yield
    except ApiException as exc:
        reason = _reason(exc)
        if exc.status == 403:
            raise EngineError(
                f"kubernetes forbids {verb} on {where}: {reason}", hint=RBAC_HINT
            ) from exc
        if exc.status == 401:
            raise ConfigError(f"kubernetes refused our credentials: {reason}") from exc
        if exc.status == 404:
            raise NotFoundError(f"{where}: {reason}") from exc
        if exc.status == 409:
            raise ConflictError(f"{verb} {where}: {reason}") from exc
        raise EngineError(f"{verb} {where} failed: {exc.status} {reason}") from exc
    except (HTTPError, OSError) as exc:
        raise EngineError(
            f"kubernetes API unreachable ({verb} {where}): {exc}",
            hint="check the component's kubeconfig and that the API server answers",
        ) from exc


def _reason(exc: ApiException) -> str:
    import json

    with contextlib.suppress(ValueError, TypeError):
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    return str(exc.reason)


def api_client(kubeconfig: str | None) -> Any:
    """A client from ``kubeconfig``, else the pod's service account, else ``~/.kube/config``."""
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        return config.new_client_from_config(config_file=kubeconfig)
    except (config.ConfigException, OSError) as exc:
        raise ConfigError(
            f"no usable kubeconfig for velero ({exc})", hint="set the component's kubeconfig"
        ) from exc


@dataclass(frozen=True)
class Workload:
    """A Deployment or StatefulSet and how many of its replicas are wanted and ready."""

    plural: str
    namespace: str
    name: str
    replicas: int
    ready: int
    annotations: tuple[tuple[str, str], ...] = ()

    def annotation(self, key: str) -> str | None:
        """One of the workload's annotations, if it has it."""
        return dict(self.annotations).get(key)

    @property
    def key(self) -> str:
        """``namespace/plural/name``, how run state records it."""
        return f"{self.namespace}/{self.plural}/{self.name}"


class Cluster:
    """Velero's objects in its namespace, and the workloads of the platform's namespaces."""

    def __init__(self, api: Any, velero_namespace: str) -> None:
        self.api = api
        self.namespace = velero_namespace
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)

    @classmethod
    def connect(cls, settings: VeleroComponent) -> Cluster:
        """The cluster the component's settings name."""
        return cls(api_client(settings.kubeconfig), settings.velero_namespace)

    def close(self) -> None:
        """Release the client's connections."""
        self.api.close()

    # -- Velero's objects --------------------------------------------------------------------

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a Velero object (Backup, Restore, Schedule)."""
        with kube_errors("create", f"{plural}.{GROUP}", self.namespace):
            return _as_dict(
                self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, plural, body
                )
            )

    def get(self, plural: str, name: str) -> dict[str, Any]:
        """One Velero object."""
        with kube_errors("get", f"{plural}.{GROUP} {name}", self.namespace):
            return _as_dict(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, plural, name
                )
            )

    def find(self, plural: str, name: str) -> dict[str, Any] | None:
        """One Velero object, or None when there is none by that name."""
        try:
            return self.get(plural, name)
        except NotFoundError:
            return None

    def all(self, plural: str) -> list[dict[str, Any]]:
        """Every Velero object of one kind."""
        with kube_errors("list", f"{plural}.{GROUP}", self.namespace):
            found = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural
            )
        return list(_as_dict(found).get("items") or [])

    def patch(self, plural: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch a Velero object."""
        with kube_errors("patch", f"{plural}.{GROUP} {name}", self.namespace):
            return _as_dict(
                self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, plural, name, body
                )
            )

    def follow(
        self,
        plural: str,
        name: str,
        *,
        until: Callable[[dict[str, Any]], bool],
        seen: Callable[[dict[str, Any]], None],
        budget: float,
    ) -> dict[str, Any]:
        """Watch one object until ``until`` holds, passing each version to ``seen``.

        A watch that drops (the API server restarts, a proxy cuts it) is resumed from the
        last resourceVersion seen, so no change is missed; a 410 Gone reads the object again.
        """
        obj = self.get(plural, name)
        seen(obj)
        deadline = time.monotonic() + budget
        drops = 0
        while not until(obj):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EngineError(
                    f"{plural} {name} did not finish within {round(budget)}s",
                    hint="Velero may be stuck; see `velero describe` and its logs",
                )
            version = obj["metadata"].get("resourceVersion", "")
            try:
                obj, news = self._watch_once(plural, name, version, remaining, until, seen)
            except _Gone:
                obj, news = self.get(plural, name), True
            drops = 0 if news else drops + 1
            if drops >= _DROPS_WITHOUT_NEWS:
                raise EngineError(f"watching {plural} {name} keeps failing")
            if drops:
                time.sleep(min(0.1 * 2**drops, 2.0))  # back off a failing API server
        return obj

    def _watch_once(
        self,
        plural: str,
        name: str,
        version: str,
        remaining: float,
        until: Callable[[dict[str, Any]], bool],
        seen: Callable[[dict[str, Any]], None],
    ) -> tuple[dict[str, Any], bool]:
        """One watch request from ``version``; returns the last object and whether it moved."""
        stream = watch.Watch()
        last: dict[str, Any] | None = None
        try:
            with kube_errors("watch", f"{plural}.{GROUP}", self.namespace):
                try:
                    for event in stream.stream(
                        self.custom.list_namespaced_custom_object,
                        GROUP,
                        VERSION,
                        self.namespace,
                        plural,
                        field_selector=f"metadata.name={name}",
                        resource_version=version,
                        timeout_seconds=max(1, int(min(remaining, _WATCH_WINDOW))),
                    ):
                        last = dict(event["raw_object"])
                        seen(last)
                        if until(last):
                            break
                except ApiException as exc:
                    if exc.status == 410:
                        raise _Gone() from exc
                    raise
        except EngineError as exc:
            if not isinstance(exc.__cause__, HTTPError | OSError):
                raise
            # The stream broke mid-way: the caller resumes from what we saw.
        finally:
            stream.stop()
        if last is None:
            # A window with no event: read the object, it may have moved just before.
            return self.get(plural, name), False
        return last, True

    # -- workloads ---------------------------------------------------------------------------

    def workloads(self, namespace: str) -> list[Workload]:
        """The Deployments and StatefulSets of a namespace, with wanted and ready replicas."""
        found = []
        for plural, lister in (
            ("deployments", self.apps.list_namespaced_deployment),
            ("statefulsets", self.apps.list_namespaced_stateful_set),
        ):
            with kube_errors("list", f"{plural}.apps", namespace):
                items: list[Any] = lister(namespace).items
            for item in items:
                wanted = item.spec.replicas if item.spec.replicas is not None else 1
                ready = (item.status.ready_replicas or 0) if item.status else 0
                notes = tuple(sorted((item.metadata.annotations or {}).items()))
                found.append(Workload(plural, namespace, item.metadata.name, wanted, ready, notes))
        return found

    def annotate(self, workload: Workload, annotations: dict[str, str | None]) -> None:
        """Set (or, with None, remove) annotations on a workload."""
        patch = {"metadata": {"annotations": annotations}}
        name, namespace = workload.name, workload.namespace
        with kube_errors("patch", f"{workload.plural}.apps {name}", namespace):
            if workload.plural == "statefulsets":
                self.apps.patch_namespaced_stateful_set(name, namespace, patch)
            else:
                self.apps.patch_namespaced_deployment(name, namespace, patch)

    def scale(self, plural: str, namespace: str, name: str, replicas: int) -> None:
        """Set a workload's replicas through its scale subresource."""
        patch = {"spec": {"replicas": replicas}}
        with kube_errors("patch", f"{plural}/scale {name}", namespace):
            if plural == "statefulsets":
                self.apps.patch_namespaced_stateful_set_scale(name, namespace, patch)
            else:
                self.apps.patch_namespaced_deployment_scale(name, namespace, patch)

    def delete_namespace(self, namespace: str) -> None:
        """Delete a (scratch) namespace; one already gone is fine."""
        with contextlib.suppress(NotFoundError), kube_errors("delete", "namespaces", namespace):
            self.core.delete_namespace(namespace)


def _as_dict(value: Any) -> dict[str, Any]:
    # The custom-objects API is typed ``object``; it returns the JSON body as a dict.
    if not isinstance(value, dict):
        raise EngineError(f"kubernetes answered {type(value).__name__}, not an object")
    return value


def settings_of(ctx: Context, component: str) -> VeleroComponent:
    """The component's settings, which must be of kind velero."""
    settings = ctx.settings.component(component)
    if not isinstance(settings, VeleroComponent):
        raise EngineError(f"component {component} is {settings.kind}, not velero")
    return settings


@contextmanager
def connected(ctx: Context, component: str) -> Iterator[Cluster]:
    """The component's cluster, closed afterwards."""
    cluster = Cluster.connect(settings_of(ctx, component))
    try:
        yield cluster
    finally:
        cluster.close()


class _Gone(Exception):
    """The watch's resourceVersion is too old (410): read the object afresh."""
