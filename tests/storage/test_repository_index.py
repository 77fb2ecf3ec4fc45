"""The catalog index: kept by commits, rebuilt from manifests, safe under concurrency."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
import redis as redis_lib

from tests.services import MotoServer, free_port
from tests.storage.backups import Clock, commit_one
from tests.storage.stores import Inspector, local_store, s3_store
from tests.sync import Checked
from workers.core.catalog import FACT_RECOVERABLE_UNTIL, find_backup
from workers.core.config import Settings
from workers.core.errors import NotFoundError
from workers.core.manifest import VerificationRecord, VerificationState
from workers.storage.configured import open_repository
from workers.storage.repository import PipelineOptions, Repository, index_key
from workers.storage.store_local import LocalStore
from workers.storage.store_s3 import S3Store

# -- the index ------------------------------------------------------------------------------


def test_the_index_follows_commits_verifications_and_deletes(
    repo: Repository, store: LocalStore | S3Store, clock: Clock
) -> None:
    first, second, third = (commit_one(repo, clock) for _ in range(3))
    assert [b.id for b in repo.index("postgres").backups] == [first.id, second.id, third.id]
    record = VerificationRecord(state=VerificationState.PASSED, at=clock.tick(minutes=1))
    updated = repo.record_verification(second, record)
    assert repo.manifest(second.id).verification == record == updated.verification
    assert repo.index("postgres").backups[1].verification == record
    repo.delete(first)
    with pytest.raises(NotFoundError):
        repo.manifest(first.id)
    assert list(store.list_objects(f"postgres/{first.id}/")) == []
    assert [b.id for b in repo.index("postgres").backups] == [second.id, third.id]
    other = commit_one(repo, clock, component="etcd")
    assert [b.id for b in repo.index("etcd").backups] == [other.id]


def test_rebuild_after_losing_the_index_finds_every_committed_backup(
    repo: Repository, store: LocalStore | S3Store, clock: Clock
) -> None:
    committed = [commit_one(repo, clock).id for _ in range(3)]
    with repo.begin("postgres", "x") as writer:  # objects but no manifest: not a backup
        writer.write("dump", [b"half"])
        uncommitted = writer.id
    repo.set_facts("postgres", **{FACT_RECOVERABLE_UNTIL: "2026-11-24T03:30:00+00:00"})
    Inspector(store).remove(index_key("postgres"))
    index = repo.index("postgres")  # rebuilt on demand, then saved
    assert [b.id for b in index.backups] == committed
    assert uncommitted not in [b.id for b in index.backups]
    assert store.exists(index_key("postgres"))
    assert repo.rebuild_index("postgres").backups == index.backups
    # Facts live only in the index: a rebuild keeps them while the index is readable.
    repo.set_facts("postgres", wal="000000010000000000000007")
    assert repo.rebuild_index("postgres").facts["wal"] == "000000010000000000000007"
    latest = find_backup(index, "latest")
    assert latest is not None and latest.id == committed[-1]
    found = find_backup(index, committed[0][: len("postgres-20261124T0301Z-")])
    assert found is not None and found.id == committed[0]


def test_a_corrupt_index_is_rebuilt(
    repo: Repository, store: LocalStore | S3Store, clock: Clock
) -> None:
    manifest = commit_one(repo, clock)
    store.put_bytes(index_key("postgres"), b"not json")
    assert [b.id for b in repo.index("postgres").backups] == [manifest.id]


def test_batch_deletes_carry_content_md5(s3_server: MotoServer, bucket: str) -> None:
    # OSS and older MinIO refuse DeleteObjects without Content-MD5, which botocore >= 1.36
    # no longer sends by itself; watch the real request leave the client.
    store = s3_store(s3_server.url, bucket)
    sent: list[dict[str, str]] = []
    store.client.meta.events.register(
        "before-send.s3.DeleteObjects",
        lambda request, **_: sent.append(dict(request.headers)),
    )
    repo = Repository(store, PipelineOptions(compression_level=1, compression_threads=0))
    manifest = commit_one(repo, Clock())
    repo.delete(manifest)
    assert sent, "no DeleteObjects request was made"
    for headers in sent:
        body_md5 = headers.get("Content-MD5")
        assert body_md5 and len(base64.b64decode(body_md5)) == 16
    assert list(store.list_objects("postgres/")) == []


# -- concurrent index updates ------------------------------------------------------------------


def hammer(repo: Repository, committers: int = 2, each: int = 6, facts: int = 20) -> list[str]:
    """Commit from several threads while another records facts, as the WAL archiver does."""
    ids: list[str] = []

    def commit_many() -> None:
        for _ in range(each):
            with repo.begin("postgres", "x") as writer:
                writer.write("d", [b"x"], compress=False)
                ids.append(writer.commit().id)

    def record_facts() -> None:
        for number in range(facts):
            repo.set_facts("postgres", segment=number)

    threads = [Checked(commit_many) for _ in range(committers)]
    threads.append(Checked(record_facts))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.check(120)  # a commit that raised fails the test here
    assert len(ids) == committers * each
    return ids


def test_concurrent_updates_of_a_local_index_lose_nothing(tmp_path: Path) -> None:
    # Before the index lock, about half of these commits vanished from the index.
    repo = Repository(local_store(tmp_path / "store"), PipelineOptions(1, 0))
    ids = hammer(repo)
    index = Repository(local_store(tmp_path / "store")).index("postgres")
    assert sorted(b.id for b in index.backups) == sorted(ids)
    assert index.facts["segment"] == 19


def test_concurrent_updates_of_an_s3_index_lose_nothing_with_redis(
    make_settings: Callable[..., Settings], s3_env: dict[str, str], redis_url: str
) -> None:
    settings = make_settings(env={**s3_env, "KOSMOS__REDIS__URL": redis_url})
    ids = hammer(open_repository(settings))
    index = open_repository(settings).index("postgres")
    assert sorted(b.id for b in index.backups) == sorted(ids)
    assert index.facts["segment"] == 19
    assert redis_lib.Redis.from_url(redis_url).keys("*index-lock*") == []  # all released


def test_index_updates_go_ahead_when_redis_is_down(
    make_settings: Callable[..., Settings], s3_env: dict[str, str]
) -> None:
    settings = make_settings(
        env={**s3_env, "KOSMOS__REDIS__URL": f"redis://127.0.0.1:{free_port()}/0"}
    )
    repo = open_repository(settings)
    manifest = commit_one(repo, Clock())
    repo.set_facts("postgres", segment=1)
    index = repo.index("postgres")
    assert [b.id for b in index.backups] == [manifest.id]
    assert index.facts["segment"] == 1
