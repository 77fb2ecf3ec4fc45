"""Secrets in Slack, end to end: `/backup run secrets`, `list`, `verify --deep`, then
`/restore secrets latest --target-env prod -- …` approved by a second person, through the real
bot (gunicorn), a real worker, the fake Slack and the fake Infisical. Afterwards no seeded
value is anywhere: Slack messages, logs, Redis, the store, any process's argv.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyrage
import pytest
import redis as redis_lib

from tests.conftest import REDIS_DB
from tests.fakes.infisical import FakeInfisical
from tests.fakes.slack import FakeSlack, post_to_bot, slash_body
from tests.scenarios.bot_process import SECRET, bot_env, running_bot, running_worker
from tests.scenarios.restore_world import (
    CHANNEL,
    GROUPS,
    KEY,
    World,
    card_text,
    click,
    request_from,
    slash,
)
from tests.sync import wait_until
from workers.config_loader import parse_settings
from workers.context import Context

pytestmark = pytest.mark.timeout(240)
PROJECT = "proj-slack"
SEEDED = {"/": ("API_TOKEN", "SLACKLEAK-Qw71-api"), "/db": ("DB_PASSWORD", "SLACKLEAK-Er82-db")}


def argv_of_every_process() -> str:
    """Every process's command line on this machine, now."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            found.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # the process ended meanwhile
    return "\n".join(found)


def test_secrets_backup_verify_and_approved_import_from_slack(tmp_path: Path) -> None:
    infisical = FakeInfisical().start()
    infisical.add_project(PROJECT, "prod")
    for path, (key, value) in SEEDED.items():
        infisical.put_secret(PROJECT, "prod", path, key, value)
    identity = pyrage.x25519.Identity.generate()
    (tmp_path / "age.key").write_text(f"{identity}\n")
    fake = FakeSlack(usergroups={k: list(v) for k, v in GROUPS.items()}).start()
    env = bot_env(
        fake.api_url,
        f"redis://127.0.0.1:6379/{REDIS_DB}",
        tmp_path / "store",
        KOSMOS__APPROVAL_KEY=KEY,
        KOSMOS__ENCRYPTION__RECIPIENTS=f"[{identity.to_public()}]",
        KOSMOS__ENCRYPTION__IDENTITY_FILE=str(tmp_path / "age.key"),
        KOSMOS__COMPONENTS__SECRETS__ENABLED="true",
        KOSMOS__COMPONENTS__SECRETS__API_URL=infisical.url,
        KOSMOS__COMPONENTS__SECRETS__PROJECTS=f"[{PROJECT}]",
        INFISICAL_CLIENT_ID=infisical.client_id,
        INFISICAL_CLIENT_SECRET=infisical.client_secret,
    )
    settings = parse_settings(Path(env["KOSMOS_BACKUP_CONFIG"]).read_text(), env)
    repo = Context(settings).repo
    argv: list[str] = []
    try:
        with (
            running_bot(env, tmp_path / "bot.log") as bot,
            running_worker(env, tmp_path / "worker.log", "kosmos-default"),
        ):
            world = World(fake, bot, env, tmp_path, "", None)

            def backup(text: str) -> None:
                body = slash_body(text, user="UALICE", channel=CHANNEL)
                assert post_to_bot(bot.url, body, SECRET).status == 200

            backup("run secrets")
            [made] = wait_until(lambda: repo.index("secrets").backups, 60, "the export")
            argv.append(argv_of_every_process())
            backup(f"verify secrets {made.id} --deep")
            wait_until(lambda: repo.manifest(made.id).verification or None, 60, "the deep verify")
            record = repo.manifest(made.id).verification
            assert record is not None and record.deep and record.state.value == "passed"
            backup("list secrets")
            infisical.put_secret(PROJECT, "prod", "/db", "DB_PASSWORD", "intruder-value")

            asked = slash(
                world, "secrets latest --target-env prod -- intruder rewrote it", "UALICE"
            )
            request_id = request_from(asked)
            before = card_text(world, request_id)
            # The dry run's counts are on the card before anyone approves.
            assert "/db: 0 to create, 1 to update, 0 unchanged" in before, before
            assert "/: 0 to create, 0 to update, 1 unchanged" in before
            assert click(world, request_id, "UBOB", "approve").status == 200
            wait_until(
                lambda: infisical.value(PROJECT, "prod", "/db", "DB_PASSWORD") == SEEDED["/db"][1],
                60,
                "the approved import",
            )
            card = wait_until(
                lambda: (
                    "1 updated" in card_text(world, request_id) and card_text(world, request_id)
                ),
                30,
                "the card's result",
            )
            assert "/db: 0 created, 1 updated, 0 unchanged" in card
            argv.append(argv_of_every_process())
    finally:
        fake.stop()
        infisical.stop()
    client = redis_lib.Redis.from_url(env["KOSMOS__REDIS__URL"])
    places = {
        "slack": json.dumps([c.params for c in fake.calls]),
        "logs": "".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log")),
        "redis": "".join(repr(client.dump(k)) for k in client.scan_iter(match="*")),
        "store": b"".join(
            p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file()
        ).decode(errors="replace"),
        "argv": "\n".join(argv),
    }
    assert places["slack"] and places["store"]
    for _key, value in SEEDED.values():
        found = {where: text.count(value) for where, text in places.items() if value in text}
        assert found == {}, f"{value[:12]}… leaked into {found}"
