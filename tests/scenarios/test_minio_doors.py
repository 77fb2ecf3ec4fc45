"""MinIO through the generic doors: the command line, with and without ``--wait``, by id and
latest, through a real worker, moto's S3 on both sides and Redis."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.conftest import s3_client
from tests.jobs import harness
from tests.services import MotoServer
from tests.sync import wait_until

pytestmark = pytest.mark.timeout(240)


def minio_component(source: MotoServer, bucket: str) -> dict[str, object]:
    """A minio component reading one bucket of the source server."""
    return {
        "kind": "minio",
        "endpoint_url": source.url,
        "region": "us-east-1",
        "access_key_id": "test",
        "secret_access_key": "test",
        "buckets": [bucket],
        "frequency": "1h",
        "retention": "90d",
    }


def test_backup_list_and_verify_minio_from_the_command_line(
    tmp_path: Path,
    minio_source_server: MotoServer,
    small_stack: harness.Stack,
) -> None:
    source = s3_client(minio_source_server.url)
    bucket = f"doors-{uuid.uuid4().hex[:8]}"
    source.create_bucket(Bucket=bucket)
    source.put_object(Bucket=bucket, Key="report.pdf", Body=b"%PDF quarterly")
    config, settings = small_stack(extra={"minio": minio_component(minio_source_server, bucket)})

    local = harness.run_cli(config, "backup", "minio", "--local", "--json")
    assert local.returncode == 0, local.stderr
    first = json.loads(local.stdout)["id"]
    with harness.running(harness.worker(config, tmp_path)):
        waited = harness.run_cli(config, "backup", "minio", "--wait")
        assert waited.returncode == 0, waited.stderr
        queued = harness.run_cli(config, "backup", "minio")
        assert queued.returncode == 0, queued.stderr
        wait_until(harness.ended(settings, queued.stdout.strip()), 60, "the backup")
        verified = harness.run_cli(config, "verify", "minio", first, "--wait")
        latest = harness.run_cli(config, "verify", "minio", "latest", "--deep", "--wait")

    assert verified.returncode == 0, verified.stderr
    assert latest.returncode == 0, latest.stderr
    listed = harness.run_cli(config, "list", "minio", "--json")
    ids = [b["id"] for b in json.loads(listed.stdout)["backups"]]
    assert len(ids) == 3 and ids[-1] == first
    repo = harness.repository(settings)
    record = repo.manifest(first).verification
    assert record is not None and record.state.value == "passed"
    assert repo.manifest(ids[0]).details["objects"] == 1


def test_backup_list_and_verify_minio_at_the_console(
    tmp_path: Path,
    minio_source_server: MotoServer,
    small_stack: harness.Stack,
) -> None:
    import io

    from rich.console import Console

    from bot.console.chat import ConsoleChat
    from workers.context import Context

    source = s3_client(minio_source_server.url)
    bucket = f"console-{uuid.uuid4().hex[:8]}"
    source.create_bucket(Bucket=bucket)
    source.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello")
    config, settings = small_stack(extra={"minio": minio_component(minio_source_server, bucket)})
    screen = io.StringIO()
    chat = ConsoleChat(
        Context(settings),
        Console(file=screen, width=200),
        user="@sre",
        log_file=tmp_path / "console.log",
    )
    typed = ["/backup run minio", "/wait 120", "/backup verify minio latest", "/wait 120"]
    with harness.running(harness.worker(config, tmp_path)):
        chat.run([*typed, "/quit"])

    [made] = harness.repository(settings).index("minio").backups
    out = screen.getvalue()
    assert "Backup of minio queued as op-" in out
    assert f"backup {made.id}" in out
    assert "verification passed" in out, out
    record = harness.repository(settings).manifest(made.id).verification
    assert record is not None and record.state.value == "passed"
