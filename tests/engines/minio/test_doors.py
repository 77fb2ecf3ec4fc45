"""MinIO's restore doors: ``/restore minio latest --to TIME --target BUCKET`` at the console,
approved by a second person and run on a worker, and ``restore-request`` by an explicit id."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE_CONFIG, s3_client
from tests.engines.doors import REQUEST_ID, as_person, cli_identities, json_of
from tests.engines.minio.contract import source_env
from tests.scenarios.bot_process import running_worker
from tests.scenarios.console_session import ConsoleSession
from tests.services import MotoServer
from workers.config_loader import parse_settings
from workers.context import Context
from workers.core.errors import UsageError
from workers.core.restore_plan import job_params, plan_from_params
from workers.engines.minio import mirror
from workers.restore.planning import resolve_plan

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def source(minio_source_server: MotoServer) -> tuple[Any, str]:
    """A fresh source bucket with two objects (the MinIO being backed up)."""
    client, name = s3_client(minio_source_server.url), f"docs-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="keep.txt", Body=b"first")
    client.put_object(Bucket=name, Key="gone.txt", Body=b"deleted later")
    return client, name


@pytest.fixture
def env(
    s3_env: dict[str, str],
    minio_source_server: MotoServer,
    source: tuple[Any, str],
    redis_url: str,
    tmp_path: Path,
) -> dict[str, str]:
    """The example config on the moto store and the moto source, with an approval key."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
    return {
        **base,
        **s3_env,
        **source_env(minio_source_server.url, (source[1],)),
        "KOSMOS_BACKUP_CONFIG": str(EXAMPLE_CONFIG),
        "KOSMOS__REDIS__URL": redis_url,
        "KOSMOS__APPROVAL_KEY": "console-minio-approval-key-012345",
        "KOSMOS__JOBS__RETRY_INTERVALS": "[]",
        "KOSMOS_BACKUP_STATE_DIR": str(tmp_path / "state"),
    }


@pytest.fixture
def console(env: dict[str, str], tmp_path: Path) -> Iterator[ConsoleSession]:
    """The console as @sre, and a worker on MinIO's queue."""
    with (
        running_worker(env, tmp_path / "worker.log", "kosmos-default"),
        ConsoleSession(env) as session,
    ):
        session.expect(r"kosmos-backup console — you are @sre")
        yield session


def run(console: ConsoleSession, command: str) -> str:
    """Type a command that queues an operation; the console's line when it is done."""
    console.type(command)
    op_id = console.expect(r"queued as (op-\S+)").group(1)
    return console.expect(rf"^{op_id} .* — (done|failed)").string


def test_a_bucket_comes_back_as_of_a_time_approved_by_a_second_person(
    console: ConsoleSession, source: tuple[Any, str]
) -> None:
    client, name = source
    assert "Backup of minio — done" in run(console, "/backup run minio")
    before = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    client.delete_object(Bucket=name, Key="gone.txt")
    client.put_object(Bucket=name, Key="keep.txt", Body=b"second")
    assert "Backup of minio — done" in run(console, "/backup run minio")
    target = f"restored-{uuid.uuid4().hex[:8]}"
    console.type(f"/restore minio latest --to {before} --target {name} -- no, not the live one")
    console.expect(rf"bucket {name} is a live bucket of minio")
    console.type(f"/restore minio latest --to {before} --target {target} -- gone.txt was deleted")
    request = console.expect(r"Restore request (rr-\S+) is waiting").group(1)
    # The card shows the engine's dry run of the snapshot taken before the time.
    console.expect(
        rf"would restore 2 new, 0 overwritten, 0 unchanged objects \(\d+ bytes\) into {target}"
    )
    console.type("/as @sre-leads")
    console.expect(r"you are @sre-leads")
    console.type(f"/restore approve {request}")
    op_id = console.expect(rf"You approved {request}; restore (op-\S+) is queued").group(1)
    console.expect(rf"{op_id} Restore of minio — done")
    restored = {
        key: client.get_object(Bucket=target, Key=key)["Body"].read()
        for key in ("keep.txt", "gone.txt")
    }
    assert restored == {"keep.txt": b"first", "gone.txt": b"deleted later"}
    # The live bucket was not touched.
    assert client.get_object(Bucket=name, Key="keep.txt")["Body"].read() == b"second"


def test_the_cli_asks_for_an_explicit_snapshot_and_a_second_person_approves(
    env: dict[str, str], source: tuple[Any, str], tmp_path: Path
) -> None:
    client, name = source
    env = env | cli_identities()
    made = json_of(as_person(env, "UALICE", "backup", "minio", "--local", "--json"))
    client.delete_object(Bucket=name, Key="gone.txt")
    json_of(as_person(env, "UALICE", "backup", "minio", "--local", "--json"))
    target = f"restored-{uuid.uuid4().hex[:8]}"
    asked = as_person(
        env, "UALICE", "restore-request", "minio", made["id"], "--target", target,
        "--reason", "the first snapshot, from the command line",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    found = REQUEST_ID.search(asked.stdout)
    assert found is not None, asked.stdout
    with running_worker(env, tmp_path / "worker.log", "kosmos-default"):
        done = as_person(env, "UBOB", "approve", found.group(0), "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    gone = client.get_object(Bucket=target, Key="gone.txt")["Body"].read()
    assert gone == b"deleted later"


def test_a_minio_plan_reaches_the_job_as_approved(
    env: dict[str, str], source: tuple[Any, str]
) -> None:
    ctx = Context(parse_settings(EXAMPLE_CONFIG.read_text(), env))
    made = mirror.snapshot(ctx, "minio")
    plan = resolve_plan(ctx, "minio", "latest", target="restored-one")
    assert plan.backup_id == made.id and plan.options == {"target": "restored-one"}
    params = job_params(plan)
    assert plan_from_params("minio", params).digest() == plan.digest()
    assert params.restore_kwargs() == {"target": "restored-one"}
    with pytest.raises(UsageError, match="say which bucket to restore into"):
        resolve_plan(ctx, "minio", "latest")
    with pytest.raises(UsageError, match="not both"):
        resolve_plan(ctx, "minio", made.id, target="x-y-z", point=made.finished_at)


def test_without_an_approval_key_the_cli_restores_into_a_new_bucket_itself(
    env: dict[str, str], source: tuple[Any, str]
) -> None:
    client, name = source
    env = {k: v for k, v in env.items() if k != "KOSMOS__APPROVAL_KEY"}
    json_of(as_person(env, "UALICE", "backup", "minio", "--local", "--json"))
    target = f"restored-{uuid.uuid4().hex[:8]}"
    done = json_of(as_person(env, "UALICE", "restore", "minio", "--target", target, "--json"))
    assert done["backup_id"] and done["total"]["create"] == 2, done
    assert client.get_object(Bucket=target, Key="keep.txt")["Body"].read() == b"first"
    live = as_person(env, "UALICE", "restore", "minio", "--target", name, "--json")
    assert live.returncode != 0 and f"bucket {name} is a live bucket" in live.stderr
