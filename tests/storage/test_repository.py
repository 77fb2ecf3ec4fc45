"""The repository on both stores: commits, integrity at read time, encryption."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pyrage import x25519

from tests.storage.backups import START, Clock, chunks, commit_one, data
from tests.storage.stores import Inspector
from workers.core.catalog import good_backups
from workers.core.errors import ConfigError, IntegrityError, NotFoundError, StorageError
from workers.core.manifest import VerificationRecord, VerificationState
from workers.storage.repository import (
    PipelineOptions,
    Repository,
    manifest_key,
)
from workers.storage.store_local import LocalStore
from workers.storage.store_s3 import S3Store

MIB = 1 << 20


def test_commit_writes_objects_then_the_manifest_and_the_index(
    repo: Repository, store: LocalStore | S3Store, clock: Clock
) -> None:
    dump = data(3 * MIB + 17)
    with repo.begin("postgres", "postgres-logical") as writer:
        entry = writer.write("db.dump", chunks(dump), meta={"database": "app"})
        plain = writer.write("globals.sql", [b"CREATE ROLE app;\n"], compress=False)
        assert not store.exists(manifest_key("postgres", writer.id))
        assert repo.index("postgres").backups == []  # written objects are not a backup yet
        clock.tick(minutes=4)
        manifest = writer.commit(
            source={"host": "db", "databases": ["app"]},
            details={"format": "custom"},
            tool_versions={"pg_dump": "15.8"},
        )
    assert manifest.id.startswith("postgres-20261124T0300Z-")
    assert (manifest.started_at, manifest.finished_at) == (START, START + timedelta(minutes=4))
    assert [e.name for e in manifest.objects] == ["db.dump.zst", "globals.sql"]
    assert entry.raw_size == len(dump) and entry.size < len(dump)
    assert entry.meta == {"database": "app", "compression": "zstd"}
    assert plain.size == plain.raw_size == 17 and plain.meta == {}
    assert manifest.compression == "zstd" and manifest.encryption_recipients == ()
    assert manifest.total_size == entry.size + plain.size
    # The recorded checksums are those of the bytes really stored.
    for item in manifest.objects:
        stored = store.get_bytes(f"postgres/{manifest.id}/{item.name}")
        assert hashlib.sha256(stored).hexdigest() == item.sha256
        assert len(stored) == item.size
    assert repo.manifest(manifest.id) == manifest
    assert [b.id for b in repo.index("postgres").backups] == [manifest.id]
    assert b"".join(repo.open_object(manifest, "db.dump.zst")) == dump
    assert b"".join(repo.open_object(manifest, "globals.sql")) == b"CREATE ROLE app;\n"


def test_an_exception_inside_the_block_removes_what_was_written(
    repo: Repository, store: LocalStore | S3Store
) -> None:
    outside = Inspector(store)
    with pytest.raises(RuntimeError, match="pg_dump died"), repo.begin("postgres", "x") as writer:
        writer.write("first", chunks(data(100_000)))
        writer.write("second", chunks(data(6 * MIB, seed=2)), compress=False)
        raise RuntimeError("pg_dump died")
    assert list(store.list_objects("postgres/")) == []
    assert outside.uploads() == []
    assert repo.index("postgres").backups == []
    with pytest.raises(NotFoundError):
        repo.manifest(writer.id)


def test_a_source_failing_mid_upload_aborts_the_upload_and_the_backup(
    repo: Repository, store: LocalStore | S3Store
) -> None:
    outside = Inspector(store)

    def failing() -> Iterator[bytes]:
        yield from chunks(random.Random(3).randbytes(11 * MIB))  # two parts are on their way
        raise StorageError("source went away")

    with pytest.raises(StorageError, match="source went away"), repo.begin("etcd", "x") as writer:
        writer.write("snapshot.db", failing(), compress=False)
    assert outside.uploads() == []
    assert [k for k in outside.raw_keys() if "/etcd/" in f"/{k}"] == []


def test_object_names_are_checked_before_anything_is_stored(
    repo: Repository, store: LocalStore | S3Store
) -> None:
    with repo.begin("postgres", "x") as writer:
        writer.write("db.dump", [b"x"], compress=False)
        for bad, problem in [
            ("manifest.json", "reserved"),
            ("db.dump", "already has"),
            ("../etcd/x", "not a valid"),
            ("a//b", "not a valid"),
            ("-x", "not a valid"),
        ]:
            with pytest.raises(ValueError, match=problem):
                writer.write(bad, [b"never stored"], compress=False)
        writer.write("manifest.json", [b"{}"])  # stored as manifest.json.zst: allowed
        manifest = writer.commit()
    keys = [info.key.split("/", 2)[2] for info in store.list_objects("postgres/")]
    assert keys == ["db.dump", "manifest.json", "manifest.json.zst"]
    assert repo.manifest(manifest.id).id == manifest.id


def test_a_discarded_object_leaves_the_store_and_a_flawed_backup_is_never_good(
    repo: Repository, store: LocalStore | S3Store
) -> None:
    with repo.begin("postgres", "postgres-logical") as writer:
        writer.write("a.dump", [b"kept"], compress=False)
        writer.write("b.dump", [b"unchecked"], compress=False)
        writer.discard("b.dump")
        flaw = VerificationRecord(state=VerificationState.FAILED, at=START, detail="b: not dumped")
        manifest = writer.commit(verification=flaw)
    assert [e.name for e in manifest.objects] == ["a.dump"]
    assert not store.exists(f"postgres/{manifest.id}/b.dump")
    # Committed together with its record: no moment in which it counts as good.
    assert repo.manifest(manifest.id).verification == flaw
    assert repo.index("postgres").backups[0].verification == flaw
    assert good_backups(repo.index("postgres")) == []


def test_an_empty_backup_is_not_committed(repo: Repository) -> None:
    with pytest.raises(StorageError, match="no objects"), repo.begin("postgres", "x") as writer:
        writer.commit()
    assert repo.index("postgres").backups == []


def test_unknown_or_malformed_ids_are_not_found(repo: Repository, clock: Clock) -> None:
    with pytest.raises(NotFoundError, match="'bogus' is not a backup id"):
        repo.manifest("bogus")
    with pytest.raises(NotFoundError, match="postgres-20261124T0300Z-0000 does not exist"):
        repo.manifest("postgres-20261124T0300Z-0000")
    manifest = commit_one(repo, clock)
    with pytest.raises(NotFoundError, match="has no object nope"):
        repo.open_object(manifest, "nope")


# -- integrity ------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("where", [0.0, 0.5, 1.0])
def test_a_flipped_byte_is_found_by_name_at_read_time(
    repo: Repository, store: LocalStore | S3Store, clock: Clock, compress: bool, where: float
) -> None:
    blob = data(2 * MIB + 5, seed=9)
    clock.tick(minutes=1)
    with repo.begin("postgres", "x") as writer:
        entry = writer.write("db.dump", chunks(blob), compress=compress)
        manifest = writer.commit()
    key = f"postgres/{manifest.id}/{entry.name}"
    Inspector(store).flip_byte(key, min(entry.size - 1, int(entry.size * where)))
    with pytest.raises(IntegrityError) as at_check:
        repo.check_object(manifest, entry.name)
    assert entry.name in at_check.value.message
    with pytest.raises(IntegrityError) as at_read:
        for _ in repo.open_object(manifest, entry.name):
            pass
    assert entry.name in at_read.value.message
    assert manifest.id in at_read.value.message or "checksum mismatch" in at_read.value.message


def test_a_shortened_object_is_found_by_name(
    repo: Repository, store: LocalStore | S3Store, clock: Clock
) -> None:
    manifest = commit_one(repo, clock, {"db.dump": data(300_000)})
    key = f"postgres/{manifest.id}/db.dump.zst"
    store.put_bytes(key, store.get_bytes(key)[:-10])
    with pytest.raises(IntegrityError, match="db.dump.zst"):
        repo.check_object(manifest, "db.dump.zst")
    with pytest.raises(IntegrityError, match="db.dump.zst"):
        b"".join(repo.open_object(manifest, "db.dump.zst"))


def test_a_missing_object_is_not_found(
    repo: Repository, store: LocalStore | S3Store, clock: Clock
) -> None:
    manifest = commit_one(repo, clock)
    Inspector(store).remove(f"postgres/{manifest.id}/dump.zst")
    with pytest.raises(NotFoundError):
        repo.check_object(manifest, "dump.zst")


def test_a_damaged_manifest_is_an_integrity_error(
    repo: Repository, store: LocalStore | S3Store, clock: Clock
) -> None:
    manifest = commit_one(repo, clock)
    store.put_bytes(manifest_key("postgres", manifest.id), b'{"id": "truncated')
    with pytest.raises(IntegrityError, match=f"manifest of {manifest.id} is malformed"):
        repo.manifest(manifest.id)
    # A rebuild skips it rather than failing every other backup's status.
    assert repo.rebuild_index("postgres").backups == []


# -- encryption -----------------------------------------------------------------------------


def test_encrypted_objects_round_trip_and_refuse_without_identity(
    store: LocalStore | S3Store, clock: Clock
) -> None:
    identity = x25519.Identity.generate()
    other = x25519.Identity.generate()
    recipient = str(identity.to_public())
    repo = Repository(store, PipelineOptions(1, 2, (recipient,)), clock)
    secret = data(3 * MIB, seed=5)
    with repo.begin("secrets", "infisical") as writer:
        entry = writer.write("export.json", chunks(secret))
        manifest = writer.commit()
    assert entry.name == "export.json.zst.age"
    assert entry.meta == {"compression": "zstd", "encrypted": True}
    assert manifest.encryption_recipients == (recipient,)
    stored = store.get_bytes(f"secrets/{manifest.id}/{entry.name}")
    assert stored.startswith(b"age-encryption.org/v1")
    assert secret[:64] not in stored
    assert b"".join(repo.open_object(manifest, entry.name, [str(identity)])) == secret
    with pytest.raises(IntegrityError, match="export.json.zst.age is age-encrypted"):
        repo.open_object(manifest, entry.name)
    with pytest.raises(IntegrityError, match="export.json.zst.age"):
        b"".join(repo.open_object(manifest, entry.name, [str(other)]))
    with pytest.raises(ConfigError, match="not valid") as bad:
        b"".join(repo.open_object(manifest, entry.name, ["AGE-SECRET-KEY-1NOTAKEY"]))
    assert "NOTAKEY" not in bad.value.message
    repo.check_object(manifest, entry.name)  # checksums need no identity


def test_encryption_without_recipients_is_refused(repo: Repository) -> None:
    with pytest.raises(StorageError, match="no age recipients"), repo.begin("secrets", "x") as w:
        w.write("export.json", [b"{}"], encrypt=True)
