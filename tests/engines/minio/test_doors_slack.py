"""MinIO in Slack: ``/restore minio latest --target BUCKET -- …`` asked by alice, its dry run on
the card, approved by bob, run by a real worker (real bot, fake Slack, moto source)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REDIS_DB, s3_client
from tests.engines.minio.contract import source_env
from tests.fakes.slack import FakeSlack
from tests.scenarios.bot_process import bot_env, running_bot, running_worker
from tests.scenarios.restore_world import GROUPS, KEY, World, card_text, click, request_from, slash
from tests.services import MotoServer
from tests.sync import wait_until
from workers.config_loader import parse_settings
from workers.context import Context
from workers.engines.minio import mirror

pytestmark = pytest.mark.timeout(240)


def test_a_bucket_restore_asked_and_approved_in_slack(
    minio_source_server: MotoServer, s3_env: dict[str, str], tmp_path: Path
) -> None:
    source, name = s3_client(minio_source_server.url), f"docs-{uuid.uuid4().hex[:8]}"
    source.create_bucket(Bucket=name)
    source.put_object(Bucket=name, Key="report.pdf", Body=b"the old report")
    fake = FakeSlack(usergroups={k: list(v) for k, v in GROUPS.items()}).start()
    env = bot_env(
        fake.api_url,
        f"redis://127.0.0.1:6379/{REDIS_DB}",
        tmp_path / "store",
        KOSMOS__APPROVAL_KEY=KEY,
        **s3_env,
        **source_env(minio_source_server.url, (name,)),
    )
    ctx = Context(parse_settings(Path(env["KOSMOS_BACKUP_CONFIG"]).read_text(), env))
    made = mirror.snapshot(ctx, "minio")
    source.delete_object(Bucket=name, Key="report.pdf")
    target = f"restored-{uuid.uuid4().hex[:8]}"
    try:
        with (
            running_bot(env, tmp_path / "bot.log") as bot,
            running_worker(env, tmp_path / "worker.log", "kosmos-default"),
        ):
            world = World(fake, bot, env, tmp_path, "", None)
            asked = slash(world, f"minio latest --target {target} -- report.pdf is gone", "UALICE")
            request_id = request_from(asked)
            card = card_text(world, request_id)
            assert made.id in card, card
            assert "would restore 1 new, 0 overwritten, 0 unchanged objects" in card, card
            assert click(world, request_id, "UBOB", "approve").status == 200

            def restored() -> bytes | None:
                keys = (
                    source.list_objects_v2(Bucket=target).get("Contents", [])
                    if _exists(source, target)
                    else []
                )
                if not keys:
                    return None
                data: bytes = source.get_object(Bucket=target, Key="report.pdf")["Body"].read()
                return data

            assert wait_until(restored, 60, "the approved restore") == b"the old report"
            done = wait_until(
                lambda: (
                    "restored 1 new" in card_text(world, request_id)
                    and card_text(world, request_id)
                ),
                30,
                "the card's result",
            )
            assert target in done
    finally:
        fake.stop()
    assert "report.pdf" not in {
        o["Key"] for o in source.list_objects_v2(Bucket=name).get("Contents", [])
    }


def _exists(client: Any, bucket: str) -> bool:
    return bucket in {b["Name"] for b in client.list_buckets()["Buckets"]}
