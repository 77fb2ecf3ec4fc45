"""Check probes against real targets: PostgreSQL, a local HTTP server, TCP ports, the fake
Kubernetes API (through the kubernetes client), and moto's S3 server (through boto3)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from tests.conftest import PG_DSN, s3_client
from tests.fakes.kubernetes import FakeKubernetes
from tests.services import MotoServer, free_port
from workers.context import Context
from workers.core.config import Settings
from workers.core.errors import ConfigError
from workers.core.runbook import Probe
from workers.core.runbook_run import ProbeResult
from workers.runbooks.probes import run_probe

PROBE: TypeAdapter[Any] = TypeAdapter(Probe)


def probe(ctx: Context, **fields: Any) -> ProbeResult:
    return run_probe(ctx, PROBE.validate_python(fields))


@pytest.fixture
def ctx(make_settings: Callable[..., Settings], s3_env: dict[str, str]) -> Context:
    return Context(make_settings(env={**s3_env, "KOSMOS__COMPONENTS__POSTGRES__DSN": PG_DSN}))


class _Pages(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        codes = {"/ok": 200, "/down": 503, "/moved": 301}
        self.send_response(codes.get(self.path, 404))
        if self.path == "/moved":
            self.send_header("Location", "/ok")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def web() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_sql_probe_compares_the_first_column(ctx: Context) -> None:
    assert probe(ctx, type="sql", query="select 1", expect=1).ok
    assert probe(ctx, type="sql", query="select true", expect=True).ok
    assert probe(ctx, type="sql", query="select 5", expect_min=3).ok
    wrong = probe(ctx, type="sql", query="select 2", expect=3, label="two is three")
    assert not wrong.ok and wrong.label == "two is three"
    assert "got 2, expected 3" in wrong.detail
    assert "postgres@127.0.0.1:5432" in wrong.detail
    rows = probe(ctx, type="sql", query="select g from generate_series(1, 3) g", expect=[1, 2, 3])
    assert rows.ok


def test_sql_probe_failures_are_results_not_crashes(ctx: Context) -> None:
    broken = probe(ctx, type="sql", query="select * from no_such_table", expect=1)
    assert not broken.ok and "no_such_table" in broken.detail
    port = free_port()
    away = probe(ctx, type="sql", dsn=f"host=127.0.0.1 port={port} user=postgres", query="x")
    assert not away.ok and "cannot connect" in away.detail
    with pytest.raises(ConfigError):
        probe(ctx, type="sql", component="minio", query="select 1")


def test_http_probe_expects_one_status(ctx: Context, web: str) -> None:
    assert probe(ctx, type="http", url=f"{web}/ok").ok
    down = probe(ctx, type="http", url=f"{web}/down")
    assert not down.ok and "503 (expected 200)" in down.detail
    assert probe(ctx, type="http", url=f"{web}/down", expect_status=503).ok
    assert probe(ctx, type="http", url=f"{web}/moved", expect_status=301).ok
    refused = probe(ctx, type="http", url=f"http://127.0.0.1:{free_port()}/")
    assert not refused.ok


def test_tcp_probe_connects(ctx: Context, web: str) -> None:
    port = int(web.rsplit(":", 1)[1])
    assert probe(ctx, type="tcp", host="127.0.0.1", port=port).ok
    closed = probe(ctx, type="tcp", host="127.0.0.1", port=free_port(), timeout="2s")
    assert not closed.ok and "127.0.0.1" in closed.detail


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKubernetes, Path]]:
    fake = FakeKubernetes().start()
    try:
        yield fake, fake.kubeconfig(tmp_path / "kubeconfig")
    finally:
        fake.stop()


def test_deployment_probe_through_the_kubernetes_client(
    ctx: Context, kube: tuple[FakeKubernetes, Path]
) -> None:
    fake, config = kube
    fake.add_deployment("kosmos-agents", "planner", replicas=2)
    fake.add_deployment("kosmos-agents", "writer", replicas=1, ready=0)
    one = probe(
        ctx, type="deployment", namespace="kosmos-agents", name="planner", kubeconfig=str(config)
    )
    assert one.ok, one.detail
    every = probe(ctx, type="deployment", namespace="kosmos-agents", kubeconfig=str(config))
    assert not every.ok and "writer: 0/1 ready" in every.detail
    fake.set_ready("kosmos-agents", "writer", 1)
    assert probe(ctx, type="deployment", namespace="kosmos-agents", kubeconfig=str(config)).ok
    missing = probe(
        ctx, type="deployment", namespace="kosmos-agents", name="ghost", kubeconfig=str(config)
    )
    assert not missing.ok and "404" in missing.detail
    empty = probe(ctx, type="deployment", namespace="kosmos-data", kubeconfig=str(config))
    assert not empty.ok and "no deployments" in empty.detail
    assert ("GET", "/apis/apps/v1/namespaces/kosmos-agents/deployments/planner") in fake.requests


def test_bucket_count_probe_counts_storage_and_minio_objects(
    make_settings: Callable[..., Settings],
    s3_env: dict[str, str],
    s3_server: MotoServer,
    bucket: str,
) -> None:
    client = s3_client(s3_server.url)
    for key in ("kosmos/postgres/a", "kosmos/postgres/b", "kosmos/etcd/c"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    client.create_bucket(Bucket="kosmos-documents")
    client.put_object(Bucket="kosmos-documents", Key="doc-1", Body=b"x")
    minio = {
        "KOSMOS__COMPONENTS__MINIO__ENDPOINT_URL": s3_server.url,
        "KOSMOS__COMPONENTS__MINIO__ACCESS_KEY_ID": "test",
        "KOSMOS__COMPONENTS__MINIO__SECRET_ACCESS_KEY": "test",
        "KOSMOS__COMPONENTS__MINIO__REGION": "us-east-1",
    }
    ctx = Context(make_settings(env={**s3_env, **minio}))
    assert probe(ctx, type="bucket-count", prefix="postgres/", expect=2).ok
    few = probe(ctx, type="bucket-count", prefix="minio/", expect_min=1)
    assert not few.ok and "0 objects (expected at least 1)" in few.detail
    docs = probe(ctx, type="bucket-count", source="minio", bucket="kosmos-documents", expect=1)
    assert docs.ok, docs.detail


def test_bucket_count_on_a_local_store(make_settings: Callable[..., Settings]) -> None:
    ctx = Context(make_settings())
    ctx.repo.store.put_bytes("postgres/x/manifest.json", b"{}")
    ctx.repo.store.put_bytes("etcd/y", b"1")
    assert probe(ctx, type="bucket-count", prefix="postgres/", expect=1).ok
