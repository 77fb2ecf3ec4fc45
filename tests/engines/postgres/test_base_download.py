"""A base backup's tar objects streamed into GNU tar, against moto; other layouts are barman's.

The backups here are barman's layout written by hand (backup.info and data tars), so each
layout can be had without a cluster; a real one is restored by the PITR scenarios.
"""

from __future__ import annotations

import io
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import s3_client
from tests.pgcluster import CONFIG_TEMPLATE
from tests.services import MotoServer
from workers.config_loader import load_settings
from workers.core.config import Settings
from workers.engines.postgres import barman_cloud, base_download

BACKUP = "20261206T010000"
PLAIN_INFO = "backup_id=20261206T010000\ntablespaces=None\nsnapshots_info=None\nstatus=DONE\n"


def tar_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def store(s3_server: MotoServer, tmp_path: Path) -> tuple[Settings, Any, str]:
    bucket = f"kb-base-{uuid.uuid4().hex[:10]}"
    client = s3_client(s3_server.url)
    client.create_bucket(Bucket=bucket)
    config = tmp_path / "kosmos.yaml"
    config.write_text(
        CONFIG_TEMPLATE.format(
            bucket=bucket, endpoint=s3_server.url, port=5432, data_dir="/nowhere", server_name="pg"
        )
    )
    settings = load_settings(config, environ={})
    target = barman_cloud.target_for(settings, "postgres")
    prefix = f"{target.key_prefix}/{target.server_name}/base/{BACKUP}/"
    return settings, client, prefix


def put(client: Any, settings: Settings, key: str, body: bytes) -> None:
    client.put_object(Bucket=settings.storage.bucket, Key=key, Body=body)


def test_the_data_tar_and_its_parts_are_extracted_in_order(
    store: tuple[Settings, Any, str], tmp_path: Path
) -> None:
    settings, client, prefix = store
    put(client, settings, prefix + "backup.info", PLAIN_INFO.encode())
    put(client, settings, prefix + "data.tar", tar_of({"PG_VERSION": b"15\n", "base/1/1": b"a"}))
    put(client, settings, prefix + "data_0001.tar", tar_of({"base/1/1": b"b", "global/2": b"c"}))
    data_dir = tmp_path / "data"

    target = barman_cloud.target_for(settings, "postgres")
    base_download.restore(settings, target, BACKUP, str(data_dir))

    assert (data_dir / "PG_VERSION").read_bytes() == b"15\n"
    assert (data_dir / "base/1/1").read_bytes() == b"b"  # the later part wins, as in barman
    assert (data_dir / "global/2").read_bytes() == b"c"
    assert (data_dir / "pg_wal").is_dir()  # base backups leave pg_wal out


@pytest.mark.parametrize(
    ("info", "extra"),
    [
        (PLAIN_INFO.replace("tablespaces=None", "tablespaces=[('t', 16400, '/t')]"), "16400.tar"),
        (PLAIN_INFO, "data.tar.snappy"),
        (PLAIN_INFO.replace("snapshots_info=None", "snapshots_info={'provider': 'gcp'}"), None),
    ],
    ids=["tablespace", "snappy", "snapshot"],
)
def test_a_layout_it_does_not_know_is_left_to_barman(
    store: tuple[Settings, Any, str], info: str, extra: str | None
) -> None:
    settings, client, prefix = store
    put(client, settings, prefix + "backup.info", info.encode())
    put(client, settings, prefix + "data.tar", tar_of({"PG_VERSION": b"15\n"}))
    if extra:
        put(client, settings, prefix + extra, b"")
    target = barman_cloud.target_for(settings, "postgres")

    parts = base_download._plain_parts(client, settings.storage.bucket, prefix, target)

    assert parts is None
