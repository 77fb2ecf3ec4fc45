"""Queued operations from the command line do what the command says: through a real worker,
the real PostgreSQL, moto's S3 and Redis, with and without ``--wait`` and ``--json``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rq import Queue

from tests.jobs import harness
from tests.services import free_port
from workers import queues
from workers.context import Context
from workers.core.config import Settings
from workers.core.manifest import VerificationState
from workers.storage.repository import object_key

pytestmark = pytest.mark.timeout(240)


def local_backup(config: Path) -> str:
    """A real backup made in this process (``--local``); its id."""
    made = harness.run_cli(config, "backup", "postgres", "--local", "--json")
    assert made.returncode == 0, made.stderr
    return str(json.loads(made.stdout)["id"])


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """Every stdout line parsed as one JSON document."""
    assert "Traceback" not in result.stderr, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def corrupt_first_object(settings: Settings, backup_id: str) -> str:
    """Flip one byte in the middle of the backup's first object; its name."""
    repo = harness.repository(settings)
    manifest = repo.manifest(backup_id)
    name = manifest.objects[0].name
    key = object_key(manifest, name)
    data = bytearray(repo.store.get_bytes(key))
    data[len(data) // 2] ^= 0x55
    repo.store.put_bytes(key, bytes(data))
    return name


def nothing_queued(settings: Settings) -> bool:
    client = Context(settings).redis
    waiting = sum(
        Queue(settings.rq_queue(name), connection=client).count
        for name in queues.all_queues(settings)
    )
    return waiting == 0 and queues.recent_operations(client, settings) == []


def test_verify_by_id_through_a_worker_verifies_that_backup(
    tmp_path: Path,
    small_stack: harness.Stack,
) -> None:
    config, settings = small_stack()
    older, newer = local_backup(config), local_backup(config)
    with harness.running(harness.worker(config, tmp_path)):
        waited = harness.run_cli(config, "verify", "postgres", older, "--wait")
    assert waited.returncode == 0, waited.stderr
    op_id = waited.stdout.strip()
    finished = harness.events_of(settings, op_id)[-1]
    assert finished.type == "finished" and finished.summary["backup_id"] == older
    assert f"✓ verify finished: {older} verification passed" in waited.stderr
    repo = harness.repository(settings)
    record = repo.manifest(older).verification
    assert record is not None and record.state == VerificationState.PASSED
    assert repo.manifest(newer).verification is None


def test_verify_wait_exits_1_when_a_checksum_does_not_match(
    tmp_path: Path,
    small_stack: harness.Stack,
) -> None:
    config, settings = small_stack()
    backup_id = local_backup(config)
    name = corrupt_first_object(settings, backup_id)
    with harness.running(harness.worker(config, tmp_path)):
        waited = harness.run_cli(config, "verify", "postgres", backup_id, "--wait")
        as_json = harness.run_cli(config, "verify", "postgres", backup_id, "--wait", "--json")
    assert waited.returncode == 1, waited.stderr
    assert "✗ verify failed" in waited.stderr and backup_id in waited.stderr
    assert "✓" not in waited.stderr
    assert as_json.returncode == 1, as_json.stderr
    accepted, outcome = json_lines(as_json)
    assert accepted["op_id"] == outcome["op_id"] and accepted["state"] == "queued"
    assert outcome["state"] == "failed" and outcome["error"]["class"] == "IntegrityError"
    assert f"checksum mismatch in object {name}" in outcome["error"]["hint"]
    record = harness.repository(settings).manifest(backup_id).verification
    assert record is not None and record.state == VerificationState.FAILED


def test_json_gives_the_operation_id_at_once_and_the_outcome_with_wait(
    tmp_path: Path,
    small_stack: harness.Stack,
) -> None:
    config, settings = small_stack()
    queued = harness.run_cli(config, "backup", "postgres", "--json")
    assert queued.returncode == 0, queued.stderr
    [accepted] = json_lines(queued)
    assert accepted["state"] == "queued" and accepted["kind"] == "backup"
    assert accepted["component"] == "postgres" and accepted["queue"] == "kosmos-default"
    assert queues.operation(Context(settings).redis, settings, accepted["op_id"]) is not None

    with harness.running(harness.worker(config, tmp_path)):
        harness.wait_until(harness.ended(settings, accepted["op_id"]), 60, "the first backup")
        waited = harness.run_cli(config, "backup", "postgres", "--json", "--wait")
        pruned = harness.run_cli(config, "prune", "postgres", "--dry-run", "--json", "--wait")
    assert waited.returncode == 0, waited.stderr
    first, outcome = json_lines(waited)
    assert first["state"] == "queued" and outcome["op_id"] == first["op_id"]
    assert outcome["state"] == "finished" and outcome["kind"] == "backup"
    backups = harness.repository(settings).index("postgres").backups
    assert outcome["summary"]["backup_id"] == backups[-1].id and len(backups) == 2
    assert pruned.returncode == 0, pruned.stderr
    pruning = json_lines(pruned)[-1]
    assert pruning["state"] == "finished" and pruning["kind"] == "prune"
    assert pruning["summary"]["dry_run"] is True and pruning["summary"]["count"] == 0


def test_prune_wait_exits_1_when_the_prune_failed(
    tmp_path: Path,
    small_stack: harness.Stack,
    s3_server: Any,
    bucket: str,
    redis_url: str,
    small_db: str,
) -> None:
    config = harness.write_config(
        tmp_path / "kosmos.yaml",
        storage=harness.s3_storage(f"http://127.0.0.1:{free_port()}", bucket),  # nothing there
        redis_url=redis_url,
        database=small_db,
        jobs={"retry_intervals": []},
    )
    with harness.running(harness.worker(config, tmp_path)):
        waited = harness.run_cli(config, "prune", "postgres", "--wait")
    assert waited.returncode == 1, waited.stderr
    assert "✗ prune failed" in waited.stderr and "Traceback" not in waited.stderr


@pytest.mark.parametrize("ref", ["postgres-20200101T0000Z-beef", "latest"])
def test_a_backup_that_does_not_exist_is_refused_before_anything_is_queued(
    small_stack: harness.Stack,
    ref: str,
) -> None:
    config, settings = small_stack()
    for wait in ((), ("--wait",)):
        refused = harness.run_cli(config, "verify", "postgres", ref, *wait, timeout=30)
        assert refused.returncode == 2, refused.stderr
        lines = refused.stderr.splitlines()
        assert lines[0].startswith("error: postgres: no ")
        assert lines[1] == "hint: see: kosmos-backup list postgres"
        assert refused.stdout == ""
    assert nothing_queued(settings)


def test_worker_refuses_an_empty_queue_list(
    small_stack: harness.Stack,
) -> None:
    config, _ = small_stack()
    for empty in ("", " , "):
        refused = harness.run_cli(config, "worker", "--burst", "--queues", empty, timeout=30)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith("error: --queues names no queue")
