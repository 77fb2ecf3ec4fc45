"""Results people can read, typed at the console beside a real worker and PostgreSQL.

A deep verification says what it restored and compared; a shallow one after it keeps the
deep record; a restore ends with its row counts, checksums and time against the RTO.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.pgsample import pg_env, rows_of
from tests.scenarios.bot_process import running_worker
from tests.scenarios.console_session import ConsoleSession
from workers.config_loader import parse_settings
from workers.context import Context

SAMPLE = r"5 tables / 152,006 rows"
"""What the sample database holds: accounts, events, the mixed-case table, big and empty_one."""


@pytest.fixture
def env(redis_url: str, tmp_path: Path, sample_db: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
    return {
        **base,
        **pg_env(sample_db),
        "KOSMOS__REDIS__URL": redis_url,
        "KOSMOS__STORAGE__URL": f"file://{tmp_path / 'store'}",
        "KOSMOS__APPROVAL_KEY": "console-scenario-approval-key-0123",
        "KOSMOS__JOBS__RETRY_INTERVALS": "[]",
        "KOSMOS_BACKUP_STATE_DIR": str(tmp_path / "state"),
    }


@pytest.fixture
def console(env: dict[str, str], tmp_path: Path) -> Iterator[ConsoleSession]:
    """The console, with a worker on the queues the postgres component uses."""
    with (
        running_worker(env, tmp_path / "worker.log", "kosmos-default,kosmos-postgres"),
        ConsoleSession(env) as session,
    ):
        session.expect(r"kosmos-backup console — you are @sre")
        yield session


def run(console: ConsoleSession, command: str) -> str:
    """Type a command that queues an operation; the console's line when it is done."""
    console.type(command)
    op_id = console.expect(r"queued as (op-\S+)").group(1)
    return console.expect(rf"^{op_id} .* — (done|failed)").string


def test_deep_verify_says_what_it_compared_and_a_shallow_one_keeps_it(
    console: ConsoleSession, env: dict[str, str]
) -> None:
    backup_id = run(console, "/backup run postgres").rsplit("backup ", 1)[1]
    deep = run(console, "/backup verify postgres latest --deep")
    assert "Verification of postgres — done" in deep
    assert "verification passed (deep): 2 objects match their sha256, 1 archive parses; " in deep
    assert f"restored and compared {SAMPLE}: all match" in deep
    shallow = run(console, f"/backup verify postgres {backup_id}")
    assert "verification passed: 2 objects match their sha256, 1 archive parses" in shallow
    assert "(deep)" not in shallow

    console.type("/backup list postgres")
    listed = console.expect(backup_id).string
    assert "passed (deep)" in listed  # the deep pass is the stronger statement
    console.type("/backup status")
    assert "passed (deep)" in console.expect(r"postgres \(postgres\)").string
    _, errors = console.quit()
    assert errors == ""

    manifest = Context(parse_settings(EXAMPLE_CONFIG.read_text(), env)).repo.manifest(backup_id)
    assert manifest.verification is not None and not manifest.verification.deep
    assert manifest.deep_verification is not None
    assert SAMPLE in manifest.deep_verification.detail
    shown = subprocess.run(
        ["kosmos-backup", "--config", str(EXAMPLE_CONFIG), "show", backup_id],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    ).stdout
    assert "verification: passed" in shown and "deep verification: passed" in shown


def test_a_restore_ends_with_rows_checksums_and_its_time_against_the_rto(
    console: ConsoleSession, db_names: Callable[[str], str], sample_db: str
) -> None:
    run(console, "/backup run postgres")
    run(console, "/backup verify postgres latest --deep")
    run(console, "/backup verify postgres latest")
    target = db_names("console")
    console.type(f"/restore postgres latest --target {target} -- console restore drill")
    # The card judges the backup by its best record: the deep pass, not the newer shallow one.
    verified = console.expect(r"^  Verified: (.*)").group(1)
    assert verified.startswith("passed (deep: restored and compared, ")
    request_id = console.expect(r"Request: (rr-\S+)").group(1)
    console.type("/as @sre-leads")
    console.expect(r"you are @sre-leads")
    console.type(f"/restore approve {request_id}")
    done = console.expect(r"Restore of postgres — (done|failed)").string
    assert f"done · {SAMPLE} compared · checksums match · " in done
    assert " of the 4h RTO (" in done and "backup postgres-" in done
    _, errors = console.quit()
    assert errors == ""
    assert rows_of(target, "SELECT count(*) FROM big") == rows_of(
        sample_db, "SELECT count(*) FROM big"
    )
