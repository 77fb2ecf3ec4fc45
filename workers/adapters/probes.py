"""Check probes: a SQL query, an HTTP GET, a TCP connect, a ready deployment, a bucket count.

Each probe returns a ProbeResult (ok, a one-line detail, seconds); a probe that cannot even
be attempted (bad settings, an unknown component) raises a KosmosError instead. Details
never carry a password: DSNs are shown as ``user@host:port/db``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from workers.context import Context
from workers.core.config import (
    MinioComponent,
    PostgresComponent,
    StorageSettings,
    VeleroComponent,
)
from workers.core.errors import ConfigError, KosmosError, UsageError
from workers.core.runbook import (
    BucketCountProbe,
    DeploymentProbe,
    HttpProbe,
    Probe,
    SqlProbe,
    TcpProbe,
)
from workers.core.runbook_run import ProbeResult

MAX_DETAIL = 300


def run_probe(ctx: Context, probe: Probe) -> ProbeResult:
    """Run one resolved probe; a failure to reach the target is a failed result, not an error."""
    runners: dict[type, Callable[[Context, Any], tuple[bool, str]]] = {
        SqlProbe: _sql,
        HttpProbe: _http,
        TcpProbe: _tcp,
        DeploymentProbe: _deployment,
        BucketCountProbe: _bucket_count,
    }
    started = time.monotonic()
    try:
        ok, detail = runners[type(probe)](ctx, probe)
    except (ConfigError, UsageError):
        raise
    except KosmosError as exc:
        ok, detail = False, exc.message
    return ProbeResult(
        label=probe.label or _default_label(probe),
        ok=ok,
        detail=detail[:MAX_DETAIL],
        seconds=round(time.monotonic() - started, 3),
    )


def _default_label(probe: Probe) -> str:
    if isinstance(probe, SqlProbe):
        return f"sql: {' '.join(probe.query.split())[:60]}"
    if isinstance(probe, HttpProbe):
        return f"GET {probe.url}"
    if isinstance(probe, TcpProbe):
        return f"tcp {probe.host}:{probe.port}"
    if isinstance(probe, DeploymentProbe):
        return f"deployment {probe.namespace}/{probe.name} ready"
    return f"objects in {probe.bucket or 'storage'}/{probe.prefix}"


# -- SQL --------------------------------------------------------------------------------------


def _sql(ctx: Context, probe: SqlProbe) -> tuple[bool, str]:
    from workers.engines.postgres import queries
    from workers.engines.postgres.conninfo import Conninfo

    if probe.dsn:
        info = Conninfo.parse(probe.dsn, setting="probe dsn")
    else:
        component = ctx.settings.components.get(probe.component)
        if not isinstance(component, PostgresComponent):
            raise ConfigError(f"sql probe: {probe.component!r} is not a postgres component")
        info = Conninfo.parse(component.dsn.get_secret_value())
    if probe.database:
        info = info.with_dbname(probe.database)
    timeout = str(max(1, int(probe.timeout.total_seconds())))
    info = Conninfo({**info.params, "connect_timeout": timeout}, info.password)
    limit_ms = int(probe.timeout.total_seconds() * 1000)
    with (
        contextlib.closing(queries.connect(info)) as conn,
        queries.pg_errors("query", info.describe()),
    ):
        conn.execute(f"SET statement_timeout = {limit_ms}")  # type: ignore[call-overload]
        rows = conn.execute(probe.query).fetchall()  # type: ignore[call-overload]
    values = [row[0] if row else None for row in rows]
    return _compare(values, probe.expect, probe.expect_min, info.describe())


def _compare(values: list[Any], expect: Any, expect_min: Any, where: str) -> tuple[bool, str]:
    first = values[0] if values else None
    shown = _show(values)
    if expect_min is not None:
        try:
            ok = first is not None and float(first) >= float(expect_min)
        except (TypeError, ValueError):
            ok = False
        return ok, f"{where}: got {shown}, expected at least {expect_min}"
    if expect is None:
        return bool(values), f"{where}: got {shown}" if values else f"{where}: no rows"
    if isinstance(expect, list):
        ok = [_text(v) for v in values] == [_text(v) for v in expect]
    else:
        ok = bool(values) and _text(first) == _text(expect)
    return ok, f"{where}: got {shown}, expected {_show(expect)}"


def _text(value: Any) -> str:
    # YAML says true/1/'t'; PostgreSQL answers True/1: compare their plain text forms.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip().lower()


def _show(value: Any) -> str:
    if isinstance(value, list):
        text = ", ".join(_text(v) for v in value[:5])
        return f"[{text}{', …' if len(value) > 5 else ''}]" if len(value) != 1 else text
    return _text(value)


# -- HTTP and TCP ---------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # The expected status is the one the URL itself answers (a 301 is a 301).
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _http(ctx: Context, probe: HttpProbe) -> tuple[bool, str]:
    if not probe.url.startswith(("http://", "https://")):
        raise UsageError(f"http probe: {probe.url!r} is not an http(s) URL")
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(probe.url, method="GET")
    expected = int(probe.expect_status)
    try:
        with opener.open(request, timeout=probe.timeout.total_seconds()) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"GET {probe.url}: {reason}"
    return status == expected, f"GET {probe.url}: {status} (expected {expected})"


def _tcp(ctx: Context, probe: TcpProbe) -> tuple[bool, str]:
    port = int(probe.port)
    try:
        with socket.create_connection((probe.host, port), probe.timeout.total_seconds()):
            return True, f"{probe.host}:{port} accepted a connection"
    except OSError as exc:
        return False, f"{probe.host}:{port}: {exc.strerror or exc}"


# -- Kubernetes -------------------------------------------------------------------------------


def _deployment(ctx: Context, probe: DeploymentProbe) -> tuple[bool, str]:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    api_client = _kubernetes_client(ctx, probe.kubeconfig)
    api = client.AppsV1Api(api_client)
    timeout = probe.timeout.total_seconds()
    try:
        with contextlib.closing(api_client):
            if probe.name == "*":
                items = api.list_namespaced_deployment(
                    probe.namespace, _request_timeout=timeout
                ).items
            else:
                items = [
                    api.read_namespaced_deployment(
                        probe.name, probe.namespace, _request_timeout=timeout
                    )
                ]
    except ApiException as exc:
        return False, f"{probe.namespace}/{probe.name}: {exc.status} {exc.reason}"
    except (HTTPError, OSError) as exc:
        return False, f"kubernetes API unreachable: {exc}"
    if not items:
        return False, f"no deployments in {probe.namespace}"
    waiting = [w for w in (_not_ready(d) for d in items) if w]
    if waiting:
        return False, "; ".join(waiting)
    return True, f"{len(items)} deployment(s) in {probe.namespace} ready"


def _kubernetes_client(ctx: Context, kubeconfig: str | None) -> Any:
    """A client from the probe's kubeconfig, a velero component's, or the pod's account."""
    from kubernetes import client, config

    if kubeconfig is None:
        kubeconfig = next(
            (
                c.kubeconfig
                for c in ctx.settings.components.values()
                if isinstance(c, VeleroComponent) and c.kubeconfig
            ),
            None,
        )
    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        return config.new_client_from_config(config_file=kubeconfig)
    except config.ConfigException as exc:
        raise ConfigError(f"deployment probe: no usable kubeconfig ({exc})") from exc


def _not_ready(deployment: Any) -> str | None:
    name = deployment.metadata.name
    wanted = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    status = deployment.status
    ready = (status.ready_replicas or 0) if status else 0
    updated = (status.updated_replicas or 0) if status else 0
    if ready < wanted or updated < wanted:
        return f"{name}: {ready}/{wanted} ready"
    return None


# -- object counts ----------------------------------------------------------------------------


def _bucket_count(ctx: Context, probe: BucketCountProbe) -> tuple[bool, str]:
    storage = ctx.settings.storage
    if probe.source == "storage" and probe.bucket is None and storage.scheme == "file":
        count = sum(1 for _ in ctx.repo.store.list_objects(probe.prefix))
        return _count_verdict(count, probe, f"{storage.url}/{probe.prefix}")
    settings, bucket, prefix = _s3_target(ctx, probe)
    from workers.storage.store_s3 import make_s3_client, storage_errors

    s3 = make_s3_client(settings)
    count = 0
    with storage_errors("count objects", f"s3://{bucket}/{prefix}"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            count += int(page.get("KeyCount", len(page.get("Contents", []))))
    return _count_verdict(count, probe, f"s3://{bucket}/{prefix}")


def _s3_target(ctx: Context, probe: BucketCountProbe) -> tuple[StorageSettings, str, str]:
    storage = ctx.settings.storage
    if probe.source == "storage":
        if storage.scheme != "s3":
            raise ConfigError("bucket-count probe: storage is not S3; name no bucket")
        bucket = probe.bucket or storage.bucket
        base = storage.prefix + "/" if probe.bucket is None and storage.prefix else ""
        return storage, bucket, base + probe.prefix
    component = ctx.settings.components.get(probe.source)
    if not isinstance(component, MinioComponent):
        raise ConfigError(f"bucket-count probe: {probe.source!r} is not a minio component")
    if probe.bucket is None:
        raise ConfigError("bucket-count probe: name the bucket of the minio component")
    settings = StorageSettings(
        url=f"s3://{probe.bucket}",
        endpoint_url=component.endpoint_url,
        region=component.region,
        access_key_id=component.access_key_id,
        secret_access_key=component.secret_access_key,
        checksums=storage.checksums,
        addressing_style=storage.addressing_style,
        max_attempts=2,
    )
    return settings, probe.bucket, probe.prefix


def _count_verdict(count: int, probe: BucketCountProbe, where: str) -> tuple[bool, str]:
    if probe.expect is not None:
        wanted = int(probe.expect)
        return count == wanted, f"{where}: {count} objects (expected {wanted})"
    least = int(probe.expect_min) if probe.expect_min is not None else 0
    return count >= least, f"{where}: {count} objects (expected at least {least})"
