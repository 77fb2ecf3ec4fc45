"""Secrets typed at the console beside a real worker and the fake Infisical: run, verify
--deep, list, and an import approved by a second person, its dry run on the card."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.fakes.infisical import FakeInfisical
from tests.scenarios.bot_process import running_worker
from tests.scenarios.console_session import ConsoleSession

pytestmark = pytest.mark.timeout(240)
PROJECT = "proj-console"


@pytest.fixture
def infisical() -> Iterator[FakeInfisical]:
    """The fake Infisical with two secrets in prod."""
    fake = FakeInfisical().start()
    fake.add_project(PROJECT, "prod")
    fake.put_secret(PROJECT, "prod", "/", "API_TOKEN", "console-api-value")
    fake.put_secret(PROJECT, "prod", "/db", "DB_PASSWORD", "console-db-value")
    yield fake
    fake.stop()


@pytest.fixture
def console(redis_url: str, tmp_path: Path, infisical: FakeInfisical) -> Iterator[ConsoleSession]:
    """The console on the example config with the secrets component on, and a worker."""
    identity = pyrage.x25519.Identity.generate()
    (tmp_path / "age.key").write_text(f"{identity}\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
    env = {
        **base,
        "KOSMOS_BACKUP_CONFIG": str(EXAMPLE_CONFIG),
        "KOSMOS__REDIS__URL": redis_url,
        "KOSMOS__STORAGE__URL": f"file://{tmp_path / 'store'}",
        "KOSMOS__APPROVAL_KEY": "console-secrets-approval-key-0123",
        "KOSMOS__JOBS__RETRY_INTERVALS": "[]",
        "KOSMOS_BACKUP_STATE_DIR": str(tmp_path / "state"),
        "KOSMOS__ENCRYPTION__RECIPIENTS": f"[{identity.to_public()}]",
        "KOSMOS__ENCRYPTION__IDENTITY_FILE": str(tmp_path / "age.key"),
        "KOSMOS__COMPONENTS__SECRETS__ENABLED": "true",
        "KOSMOS__COMPONENTS__SECRETS__API_URL": infisical.url,
        "KOSMOS__COMPONENTS__SECRETS__PROJECTS": f"[{PROJECT}]",
        "INFISICAL_CLIENT_ID": infisical.client_id,
        "INFISICAL_CLIENT_SECRET": infisical.client_secret,
    }
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


def test_secrets_from_the_console(console: ConsoleSession, infisical: FakeInfisical) -> None:
    made = run(console, "/backup run secrets")
    assert "Backup of secrets — done" in made, made
    deep = run(console, "/backup verify secrets latest --deep")
    assert "Verification of secrets — done" in deep, deep
    console.type("/backup list secrets")
    console.expect(r"passed \(deep\)")
    infisical.put_secret(PROJECT, "prod", "/db", "DB_PASSWORD", "intruder-value")
    console.type("/restore secrets latest --target-env prod -- the intruder changed it")
    request = console.expect(r"Restore request (rr-\S+) is waiting").group(1)
    console.expect(r"/db: 0 to create, 1 to update, 0 unchanged")
    console.type("/as @sre-leads")
    console.expect(r"you are @sre-leads")
    console.type(f"/restore approve {request}")
    op_id = console.expect(rf"You approved {request}; restore (op-\S+) is queued").group(1)
    console.expect(rf"{op_id} Restore of secrets — done")
    assert infisical.value(PROJECT, "prod", "/db", "DB_PASSWORD") == "console-db-value"
    assert "console-db-value" not in "\n".join(console.transcript)
