"""A person's answer on the command line needs a proven identity, as every CLI approval does.

``kosmos-backup dr confirm … --as alice`` once accepted the claimed name with no token. Now
KOSMOS_USER + KOSMOS_USER_TOKEN prove who starts, answers or aborts (``--as`` may only
repeat that name), the person must hold a role that allows it, and only
``approvals.trust_local_console`` makes a claimed name count. Real ``kosmos-backup``
processes, Redis and a local store.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import EXAMPLE_CONFIG
from tests.scenarios.dr_world import as_person, cli_identities
from workers.config_loader import parse_settings
from workers.context import Context
from workers.core.runbook_run import Awaiting, StepStatus
from workers.runbooks import flow as runbook_flow

CUTOVER = """
name: cutover
title: Cut over to the restored database
steps:
  - id: freeze
    title: Freeze writes
    kind: manual
  - id: dns
    title: Update DNS
    kind: manual
    depends_on: [freeze]
"""
ALICE, VIEWER = "alice-token-0123456789", "viewer-token-0123456789"


def environment(redis_url: str, folder: Path, **extra: str) -> dict[str, str]:
    """A shell without Slack: the example config, a local store, our runbook and identities."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
    (folder / "runbooks").mkdir(exist_ok=True)
    (folder / "runbooks" / "cutover.yaml").write_text(CUTOVER)
    env.update(
        {
            "KOSMOS_BACKUP_CONFIG": str(EXAMPLE_CONFIG),
            "KOSMOS__REDIS__URL": redis_url,
            "KOSMOS__STORAGE__URL": f"file://{folder / 'store'}",
            "KOSMOS__DR__RUNBOOKS_DIR": str(folder / "runbooks"),
            "KOSMOS__APPROVALS__CLI_IDENTITIES": cli_identities(
                UALICE=(ALICE, "incident_commanders"), UVIEW=(VIEWER, "")
            ),
        }
    )
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str, **person: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kosmos-backup", *args],
        env={**env, **person},
        capture_output=True,
        text=True,
        timeout=60,
    )


def context(env: dict[str, str]) -> Context:
    return Context(parse_settings(EXAMPLE_CONFIG.read_text(), env))


def test_a_claimed_name_is_not_a_person_on_the_command_line(redis_url: str, tmp_path: Path) -> None:
    env = environment(redis_url, tmp_path)
    # The starter of a run may not approve its gates: who started it must be proven too.
    unproven = cli(env, "dr", "start", "cutover", "--as", "UALICE")
    assert "say who you are: export KOSMOS_USER" in unproven.stderr
    started = cli(env, "dr", "start", "cutover", **as_person("UALICE", ALICE))
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.split()[-1]  # log lines come first
    store = runbook_flow.runs(context(env))
    assert store.load(run_id).steps["freeze"].awaiting == Awaiting.CONFIRMATION

    claimed = cli(env, "dr", "confirm", run_id, "freeze", "done", "--as", "UALICE")
    assert claimed.returncode != 0
    assert "say who you are: export KOSMOS_USER" in claimed.stderr
    wrong = cli(env, "dr", "confirm", run_id, "freeze", "done", **as_person("UALICE", "guess"))
    assert "KOSMOS_USER_TOKEN does not authenticate UALICE" in wrong.stderr
    other = cli(
        env, "dr", "confirm", run_id, "freeze", "done", "--as", "UBOB", **as_person("UALICE", ALICE)
    )
    assert "--as UBOB is not who KOSMOS_USER authenticates (UALICE)" in other.stderr
    viewer = cli(env, "dr", "confirm", run_id, "freeze", "done", **as_person("UVIEW", VIEWER))
    assert "UVIEW may not use dr confirm" in viewer.stderr
    aborted = cli(env, "dr", "abort", run_id, "--reason", "nobody", "--as", "UALICE")
    assert "say who you are" in aborted.stderr
    # Nothing above changed the run.
    run = store.load(run_id)
    assert run.steps["freeze"].status == StepStatus.RUNNING and not run.finished
    assert run.started_by == "UALICE" and len(store.recent()) == 1

    proven = cli(env, "dr", "confirm", run_id, "freeze", "done", **as_person("UALICE", ALICE))
    assert proven.returncode == 0, proven.stderr
    assert "freeze: done" in proven.stdout
    run = store.load(run_id)
    assert run.steps["freeze"].confirmed_by == "UALICE"
    assert run.steps["dns"].awaiting == Awaiting.CONFIRMATION


def test_a_trusted_local_console_takes_the_name_it_is_given(redis_url: str, tmp_path: Path) -> None:
    env = environment(redis_url, tmp_path, KOSMOS__APPROVALS__TRUST_LOCAL_CONSOLE="true")
    run_id = cli(env, "dr", "start", "cutover", "--as", "UALICE").stdout.split()[-1]
    answered = cli(env, "dr", "confirm", run_id, "freeze", "done", "--as", "UALICE")
    assert answered.returncode == 0, answered.stderr
    run = runbook_flow.runs(context(env)).load(run_id)
    assert run.steps["freeze"].confirmed_by == "UALICE"
    # Trusted for who they are, not for what they may do: a viewer still may not answer.
    viewer = cli(env, "dr", "confirm", run_id, "dns", "done", "--as", "UVIEW")
    assert "UVIEW may not use dr confirm" in viewer.stderr
