"""``kosmos-backup runbook check``: the shipped runbooks pass; a cycle, an unknown step kind
and a bad reference are rejected with the file, the line and the step."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from workers.context import Context
from workers.core.config import Settings
from workers.core.errors import ConfigError
from workers.core.run_start import new_run
from workers.core.runbook import JobStep, ManualStep, StepMode
from workers.core.runbook_run import Awaiting, RunStatus, StepStatus
from workers.runbooks import operations as runbook_ops
from workers.runbooks.files import DEFAULT_DIR, load_runbook, parse_runbook

BROKEN = {
    "cycle.yaml": """\
name: cycle
title: A cycle
steps:
  - id: a
    title: A
    kind: manual
    depends_on: [b]
  - id: b
    title: B
    kind: manual
    depends_on: [a]
""",
    "kind.yaml": """\
name: kind
title: An unknown kind
steps:
  - id: a
    title: A
    kind: manual
  - id: b
    title: B
    kind: telepathy
""",
    "reference.yaml": """\
name: reference
title: A bad reference
inputs:
  target: {default: scratch}
steps:
  - id: pick
    title: Pick
    kind: job
    operation: catalog.pick
  - id: restore
    title: Restore
    kind: job
    operation: postgres.restore
    depends_on: [pick]
    params:
      backup: ${steps.pick.outputs.backup_id}
      target_database: ${inputs.tagret}
""",
}


def check(*files: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")}
    return subprocess.run(
        ["kosmos-backup", "runbook", "check", *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_broken_runbooks_are_rejected_with_file_line_and_step(tmp_path: Path) -> None:
    paths = []
    for name, text in BROKEN.items():
        paths.append(tmp_path / name)
        paths[-1].write_text(text)
    result = check(*paths)
    assert result.returncode == 2, result
    errors = result.stderr
    assert f"{tmp_path / 'cycle.yaml'}:11: error: step 'b': dependency cycle: a -> b -> a" in errors
    assert (
        f"{tmp_path / 'kind.yaml'}:9: error: step 'b': unknown step kind 'telepathy' "
        "(expected manual, job, check or approval)"
    ) in errors
    assert (
        f"{tmp_path / 'reference.yaml'}:17: error: step 'restore': ${{inputs.tagret}} names an "
        "input that the runbook does not declare"
    ) in errors
    assert "3 error(s) in runbook files" in errors


def test_the_shipped_runbooks_pass() -> None:
    result = check()
    assert result.returncode == 0, result.stderr
    for name in ("dr-test", "full-recovery", "postgres-restore"):
        assert f"{name}.yaml: {name}," in result.stdout


def test_the_shipped_runbooks_mirror_the_reference_page(
    make_settings: Callable[..., Settings],
) -> None:
    ctx = Context(make_settings())

    def here(op: str) -> bool:
        return runbook_ops.available(ctx, op)

    restore = load_runbook(DEFAULT_DIR / "postgres-restore.yaml", available=here)
    assert [s.title for s in restore.runbook.steps] == [
        "Scale down consumers",
        "Restore to a new instance (postgres-restore-0)",
        "Apply WAL recovery",
        "Promote and verify",
        "Scale consumers back up",
    ]
    scale = restore.runbook.steps[0]
    assert isinstance(scale, JobStep) and scale.operation == "velero.scale-down"
    assert scale.commands == ("kubectl scale -n kosmos-agents --replicas=0 deployment --all",)
    # The Velero engine scales (a velero component is on); without one, the step is manual
    # with the page's exact command.
    assert restore.modes["scale-down"] == StepMode.AUTOMATED
    assert restore.modes["scale-up"] == StepMode.AUTOMATED
    without = Context(make_settings(**{"components.kubernetes.enabled": "false"}))
    by_hand = load_runbook(
        DEFAULT_DIR / "postgres-restore.yaml",
        available=lambda op: runbook_ops.available(without, op),
    )
    assert by_hand.modes["scale-down"] == by_hand.modes["scale-up"] == StepMode.MANUAL
    recovery = load_runbook(DEFAULT_DIR / "full-recovery.yaml", available=here)
    assert len(recovery.runbook.steps) == 9
    etcd = recovery.runbook.step("restore-etcd")
    assert "k3s server --cluster-reset --cluster-reset-restore-path=<snapshot>" in etcd.commands
    # The download is a job on the node; the destructive reset a person confirms.
    assert recovery.modes["fetch-etcd"] == StepMode.AUTOMATED
    assert recovery.modes["restore-etcd"] == StepMode.MANUAL
    assert isinstance(recovery.runbook.step("dns-notify"), ManualStep)
    # The same file is automated once an engine for the step lands.
    automated = load_runbook(DEFAULT_DIR / "full-recovery.yaml", available=lambda op: True)
    assert automated.modes["restore-postgres"] == StepMode.AUTOMATED
    drill = load_runbook(DEFAULT_DIR / "dr-test.yaml", available=here)
    assert drill.runbook.drill and drill.modes["restore-postgres"] == StepMode.AUTOMATED
    assert drill.modes["restore-etcd"] == StepMode.AUTOMATED  # into a scratch etcd


def test_invalid_yaml_names_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_runbook("name: x\nsteps: [\n  - id: a\n", "bad.yaml")
    assert caught.value.message.startswith("bad.yaml:")


def test_postgres_restore_hands_scale_up_to_a_person_even_after_a_failure(
    make_settings: Callable[..., Settings],
) -> None:
    """Consumers scaled to zero are never left there silently: scale-up becomes an open item.

    Without a cluster (the velero component off) the scale steps are a person's.
    """
    ctx = Context(make_settings(**{"components.kubernetes.enabled": "false"}))
    checked = load_runbook(
        DEFAULT_DIR / "postgres-restore.yaml", available=lambda op: runbook_ops.available(ctx, op)
    )
    now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    run = new_run(
        checked.runbook,
        run_id="dr-20261124T030000Z-ab12",
        params={},
        started_by="UOPS",
        now=now,
        rto=timedelta(hours=4),
        rpo=timedelta(hours=1),
        modes=checked.modes,
        safe={},
    )
    assert run.next_runnable() == ["scale-down"]
    run.start("scale-down", now)
    run.confirm("scale-down", "done", by="UOPS", note=None, now=now)
    run.start("restore", now, "op-1")
    run.approved("restore", now, approval_id="rr-1", by="ULEAD")
    assert run.fail("restore", now, "the restore failed") == "stop"
    # The steps between are not reached; the one that undoes scale-down still comes.
    assert run.next_runnable() == ["scale-up"]
    waiting = run.start("scale-up", now)
    assert waiting.awaiting == Awaiting.CONFIRMATION
    assert not run.settle(now)  # the run stays open until a person answers it
    run.confirm("scale-up", "done", by="UOPS", note=None, now=now)
    assert run.settle(now) and run.status == RunStatus.FAILED
    assert run.steps["wal-recovery"].status == StepStatus.SKIPPED
    assert run.steps["scale-up"].status == StepStatus.DONE
