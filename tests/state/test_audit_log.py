"""The audit log on the machine's Redis: atomic chaining, tamper detection, export."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis as redis_lib

from tests.conftest import s3_client
from tests.services import MotoServer
from workers.context import Context
from workers.core.audit import AuditAction
from workers.core.config import Settings
from workers.core.retention import Deletion
from workers.restore_guard import upkeep
from workers.settings import parse_settings
from workers.state.audit_log import AuditLog, export_key, verify_export
from workers.storage.configured import open_store
from workers.storage.store_local import LocalStore

T0 = datetime(2026, 11, 24, 23, 58, tzinfo=UTC)


def log_for(url: str) -> AuditLog:
    return AuditLog(redis_lib.Redis.from_url(url), "kt")


def test_appends_chain_and_verify(redis_url: str) -> None:
    log = log_for(redis_url)
    first = log.record(AuditAction.REQUEST, "UALICE", at=T0, subject="rr-1", reason="drill")
    second = log.record(AuditAction.APPROVE, "UBOB", at=T0, subject="rr-1")
    assert (first.seq, second.seq) == (1, 2)
    assert second.prev_hash == first.hash
    report = log.verify()
    assert report.ok and report.checked == 2 and report.head == second.hash
    assert [r.action for r in log.tail(1)] == [AuditAction.APPROVE]


def test_concurrent_writers_never_fork_the_chain(redis_url: str) -> None:
    barrier = threading.Barrier(8)

    def writer(n: int) -> None:
        log = log_for(redis_url)
        barrier.wait()
        for i in range(25):
            log.record(AuditAction.PRUNE_DELETE, f"worker-{n}", at=T0, subject=f"b-{n}-{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = log_for(redis_url).verify()
    assert report.ok and report.checked == 200


def test_tampering_with_one_record_is_named(redis_url: str) -> None:
    log = log_for(redis_url)
    for n in range(6):
        log.record(AuditAction.DENY, f"U{n}", at=T0, subject=f"rr-{n}", reason="no")
    client = redis_lib.Redis.from_url(redis_url)
    doc = json.loads(client.lindex("kt:audit", 3) or b"")
    doc["details"]["reason"] = "yes"
    client.lset("kt:audit", 3, json.dumps(doc))
    report = log.verify()
    assert not report.ok and report.broken_at == 4 and report.broken_seq == 4


def test_removing_the_newest_records_is_detected_by_the_head(redis_url: str) -> None:
    log = log_for(redis_url)
    for n in range(4):
        log.record(AuditAction.REQUEST, f"U{n}", at=T0)
    redis_lib.Redis.from_url(redis_url).rpop("kt:audit")
    report = log.verify()
    assert not report.ok and report.broken_at == 4 and "records were removed" in report.problem


def test_export_writes_days_incrementally_and_verifies(redis_url: str, tmp_path: Path) -> None:
    log, store = log_for(redis_url), LocalStore(tmp_path / "store")
    log.record(AuditAction.REQUEST, "UALICE", at=T0)
    log.record(AuditAction.APPROVE, "UBOB", at=T0 + timedelta(minutes=5))  # the next day
    keys = log.export(store)
    assert keys == [export_key(T0.date()), export_key((T0 + timedelta(days=1)).date())]
    assert log.export(store) == []  # nothing new
    log.record(AuditAction.EXECUTE, "worker", at=T0 + timedelta(minutes=6))
    assert log.export(store) == [export_key((T0 + timedelta(days=1)).date())]
    day_two = store.get_bytes(export_key((T0 + timedelta(days=1)).date())).decode()
    assert len(day_two.splitlines()) == 2
    assert verify_export(store).ok and verify_export(store).checked == 3


def test_export_to_s3_over_http(redis_url: str, s3_server: MotoServer, bucket: str) -> None:
    env = {
        "KOSMOS__STORAGE__URL": f"s3://{bucket}/kosmos",
        "KOSMOS__STORAGE__ENDPOINT_URL": s3_server.url,
        "KOSMOS__STORAGE__REGION": "us-east-1",
        "KOSMOS__STORAGE__ACCESS_KEY_ID": "test",
        "KOSMOS__STORAGE__SECRET_ACCESS_KEY": "test",
    }
    text = "storage: {url: file:///unused}\ncomponents: {}\n"
    store = open_store(parse_settings(text, env))
    log = log_for(redis_url)
    for n in range(3):
        log.record(AuditAction.REQUEST, f"U{n}", at=T0)
    [key] = log.export(store)
    listed = s3_client(s3_server.url).list_objects_v2(Bucket=bucket, Prefix="kosmos/_audit/")
    assert [o["Key"] for o in listed["Contents"]] == [f"kosmos/{key}"]
    # A copy altered in the store is caught too.
    body = store.get_bytes(key).decode().replace('"U1"', '"UX"')
    store.put_bytes(key, body.encode())
    report = verify_export(store)
    assert not report.ok and report.broken_at == 2


def test_prune_deletions_are_recorded_but_dry_runs_are_not(redis_url: str) -> None:
    log = log_for(redis_url)
    gone = [
        Deletion(
            component="postgres",
            backup_id=f"postgres-20261101T0{n}00Z-00a{n}",
            kind="postgres-logical",
            finished_at=T0,
            size=100 * n,
            reason="past 30d",
        )
        for n in range(3)
    ]
    dry = gone[0].model_copy(update={"dry_run": True})
    assert log.record_deletions([*gone, dry], "worker@test", T0) == 3
    records = log.tail(10)
    assert [r.action for r in records] == [AuditAction.PRUNE_DELETE] * 3
    assert [r.subject for r in records] == [d.backup_id for d in gone]
    assert records[1].details["size"] == 100 and log.verify().ok


def test_scheduler_upkeep_exports_once_a_day(
    redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    ctx = Context(make_settings(**{"redis.url": redis_url}), clock=lambda: T0)
    audit = AuditLog(ctx.redis, ctx.settings.redis.key_prefix)
    audit.record(AuditAction.REQUEST, "UALICE", at=T0)
    upkeep(ctx)
    key = export_key(T0.date())
    assert ctx.repo.store.exists(key)
    audit.record(AuditAction.DENY, "UBOB", at=T0)
    upkeep(ctx)  # the same day: not exported again
    assert len(ctx.repo.store.get_bytes(key).splitlines()) == 1
