"""The console: the same commands typed at a terminal (stdin), the same board and live updates."""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis as redis_lib
from rich.console import Console

from bot.console.chat import ConsoleChat
from tests.conftest import EXAMPLE_CONFIG
from tests.console_session import Session
from tests.drill_sample import DRILL, DRILL_LINE
from tests.sync import Checked, wait_until
from workers.context import Context
from workers.core.config import Settings
from workers.core.events import ChatContext, Event, EventType
from workers.queues import read_events


def console_env(redis_url: str, store: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
    env.update(
        {
            "KOSMOS_BACKUP_CONFIG": str(EXAMPLE_CONFIG),
            "KOSMOS__REDIS__URL": redis_url,
            "KOSMOS__STORAGE__URL": f"file://{store}",
            "COLUMNS": "160",
        }
    )
    env.update(extra)
    return env


def test_console_driven_through_stdin_shows_the_status_board_and_usage(
    redis_url: str, tmp_path: Path
) -> None:
    typed = "/backup status\n/backup run mongodb\n/as @platform\n/backup run etcd\n/as nobody\n"
    result = subprocess.run(
        ["kosmos-backup", "bot"],  # no Slack tokens: the console is the default
        input=typed + "/quit\n",
        capture_output=True,
        text=True,
        env=console_env(redis_url, tmp_path / "store"),
        timeout=60,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "kosmos-backup console — you are @sre (operators)" in out
    assert "Backups  (RPO 1h, RTO 4h)" in out
    for name in ("postgres", "minio", "etcd", "kubernetes", "secrets"):
        assert name in out
    assert "never backed up" in out and "WAL archive lag: no WAL archived yet" in out
    assert "unknown component 'mongodb'" in out and "valid components: postgres, minio" in out
    assert "you are @platform: viewers" in out
    assert "you may not use backup run: it needs the operators" in out
    assert "nobody is not named in slack.roles" in out
    assert "Traceback" not in out + result.stderr


def test_console_shows_live_progress_of_its_operations_from_the_event_stream(
    make_settings: Callable[..., Settings], redis_url: str, tmp_path: Path
) -> None:
    settings = make_settings(**{"redis.url": redis_url})
    ctx = Context(settings)
    screen = io.StringIO()
    console = Console(file=screen, width=160)
    chat = ConsoleChat(ctx, console, user="@sre", log_file=tmp_path / "console.log")
    worker = Checked(_pretend_worker, settings, redis_url, screen)
    worker.start()
    chat.run(["/backup run postgres", "/wait 20", "/quit"])
    worker.check(5)
    out = screen.getvalue()
    assert "Backup of postgres queued as op-" in out
    assert "running: dump app" in out
    assert "done · 2.0 MiB · in 4s · backup postgres-20261124T0300Z-7f3a" in out
    assert "still running" not in out


def _pretend_worker(settings: Settings, redis_url: str, screen: io.StringIO) -> None:
    """Append what a worker would, once the console's request is accepted."""
    client = redis_lib.Redis.from_url(redis_url)

    def accepted_event() -> Event | None:
        found = [e for _, e in read_events(client, settings) if e.type == EventType.ACCEPTED]
        return found[0] if found else None

    accepted = wait_until(accepted_event, 10, "the console's request to be accepted")
    started = datetime.now(UTC)

    def append(kind: EventType, **extra: Any) -> None:
        event = Event(
            op_id=accepted.op_id,
            type=kind,
            at=started,
            operation="backup",
            component="postgres",
            chat=ChatContext(source="console", user="@sre"),
            **extra,
        )
        client.xadd(f"{settings.redis.key_prefix}:events", {"event": event.model_dump_json()})

    append(EventType.STARTED)
    append(EventType.PROGRESS, phase="dump app", done_bytes=1 << 20, total_bytes=2 << 20)
    # The progress line may wait out the console's 1.5 s throttle; the end is never held back,
    # so it follows once the progress is on the screen.
    wait_until(lambda: "running: dump app" in screen.getvalue(), 10, "the progress line")
    summary = {"backup_id": "postgres-20261124T0300Z-7f3a", "size": 2 << 20, "duration_seconds": 4}
    append(EventType.FINISHED, summary=summary)
    client.close()


def test_up_starts_a_worker_and_the_scheduler_beside_the_console(
    redis_url: str, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    # Nothing due: the scheduler must not start real backups of the machine's databases here.
    disabled = {
        f"KOSMOS__COMPONENTS__{name}__ENABLED": "false"
        for name in ("POSTGRES", "MINIO", "ETCD", "KUBERNETES", "SECRETS")
    }
    env = console_env(redis_url, tmp_path / "store", **disabled)
    proc = subprocess.Popen(
        ["kosmos-backup", "up", "--log-dir", str(logs)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write("/backup status\n")
    proc.stdin.flush()
    client = redis_lib.Redis.from_url(redis_url)
    try:
        wait_until(lambda: client.smembers("rq:workers"), 30, "an RQ worker to register")
        wait_until(lambda: client.keys("*scheduler*leader*"), 30, "a scheduler to take the lead")
    finally:
        out, err = proc.communicate("/quit\n", timeout=60)
        client.close()
    assert proc.returncode == 0, err
    assert "Backups  (RPO 1h, RTO 4h)" in out
    assert f"worker and scheduler running (logs in {logs})" in err
    assert (logs / "worker.log").stat().st_size > 0
    assert (logs / "scheduler.log").stat().st_size > 0


GATED = """
name: gated
title: A gated cutover
steps:
  - id: freeze
    title: Freeze writes
    kind: manual
    commands: ["kubectl scale -n kosmos-agents --replicas=0 deployment --all"]
  - id: gate
    title: Two people agree
    kind: approval
    depends_on: [freeze]
  - id: cutover
    title: Cut over
    kind: manual
    depends_on: [gate]
"""


def test_a_runbook_is_answered_at_the_console_and_followed_line_by_line(
    redis_url: str, tmp_path: Path
) -> None:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "gated.yaml").write_text(GATED)
    env = console_env(
        redis_url,
        tmp_path / "store",
        KOSMOS__DR__RUNBOOKS_DIR=str(tmp_path / "runbooks"),
        KOSMOS__SLACK__ROLES__OPERATORS='["@alice"]',
        KOSMOS__SLACK__ROLES__APPROVERS='["@bob"]',
        KOSMOS__SLACK__ROLES__VIEWERS="[]",
        KOSMOS__SLACK__ROLES__INCIDENT_COMMANDERS="[]",
    )
    console = Session(["kosmos-backup", "bot", "--console"], env, tmp_path / "console.log")
    try:
        console.expect("you are @alice")
        console.send("/dr status")
        console.expect("no runbook run here yet")
        console.send("/dr start gated")
        run_id = console.expect(r"started A gated cutover as (dr-\S+)").group(1)
        console.expect(rf"{run_id} ⏸ 1\. Freeze writes: waiting for a person")
        console.expect(r"\$ kubectl scale -n kosmos-agents --replicas=0 deployment --all")
        console.send("/dr status")
        console.expect(rf"A gated cutover · run {run_id} · running")
        console.send("/dr confirm freeze done")
        console.expect(rf"{run_id} ✅ 1\. Freeze writes: done in \S+ by @alice")
        console.expect(rf"{run_id} ⏸ 2\. Two people agree: waiting for a two-person approval")
        console.expect(r"approvers: /dr approve gate")
        console.send("/dr approve gate")
        console.expect("you may not use dr approve: it needs the approvers role")
        console.send("/as @bob")
        console.send("/dr approve gate")
        console.expect(rf"{run_id} ✔ 2\. Two people agree: approved")
        console.expect(rf"{run_id} ⏸ 3\. Cut over: waiting for a person")
        console.send("/dr done cutover")
        console.expect("you may not use dr confirm: it needs the operators")
        console.send("/as @alice")
        console.send("/dr failed cutover")
        console.expect("/dr failed needs a note")
        console.send("/dr failed cutover -- the DNS provider is down")
        console.expect(rf"{run_id} ❌ 3\. Cut over: failed in \S+")
        console.expect(r"    the DNS provider is down")
    finally:
        assert console.close() == 0
    assert "Traceback" not in console.output()


def test_log_lines_go_to_the_log_file_never_into_the_console(
    redis_url: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    # A role refusal is answered in the chat and logged (a warning) for the audit trail.
    typed = "/as @platform\n/backup run etcd\n/as @sre\n/backup status\n/quit\n"
    env = console_env(redis_url, tmp_path / "store", KOSMOS_BACKUP_STATE_DIR=str(state))
    result = subprocess.run(
        ["kosmos-backup", "bot", "--console"],
        input=typed,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "you may not use backup run" in result.stdout
    assert result.stderr == ""
    for line in result.stdout.splitlines():
        assert '"level"' not in line and '"event"' not in line, line
        assert "[warning" not in line and "refused " not in line, line
    logged = [json.loads(line) for line in (state / "console.log").read_text().splitlines()]
    assert {"event": "refused", "user": "@platform", "action": "backup.run"}.items() <= (
        logged[0].items()
    )
    assert f"logs: {state / 'console.log'}" in result.stdout


def test_up_keeps_its_console_free_of_log_lines(redis_url: str, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    disabled = {
        f"KOSMOS__COMPONENTS__{name}__ENABLED": "false"
        for name in ("POSTGRES", "MINIO", "ETCD", "KUBERNETES", "SECRETS")
    }
    state = tmp_path / "state"
    env = console_env(redis_url, tmp_path / "store", KOSMOS_BACKUP_STATE_DIR=str(state), **disabled)
    result = subprocess.run(
        ["kosmos-backup", "up", "--log-dir", str(logs)],
        input="/as @platform\n/backup run etcd\n/quit\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    assert "you may not use backup run" in result.stdout
    assert result.stderr.splitlines() == [f"worker and scheduler running (logs in {logs})"]
    assert '"event": "refused"' in (state / "console.log").read_text()


def test_console_help_refusals_and_hints_speak_the_chat(redis_url: str, tmp_path: Path) -> None:
    missing = "postgres-20261124T0300Z-0000"
    typed = (
        "/backup help\n/dr help\n/as @platform\n/backup run etcd\n/as @sre\n"
        f"/restore postgres {missing} --target kb_nowhere -- why\n"
    )
    env = console_env(
        redis_url,
        tmp_path / "store",
        KOSMOS_BACKUP_STATE_DIR=str(tmp_path / "state"),
        KOSMOS__APPROVAL_KEY="console-help-approval-key-0123456789",
    )
    result = subprocess.run(
        ["kosmos-backup", "bot", "--console"],
        input=typed + "/quit\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr
    backup_help = out.split("/dr start <runbook>")[0]
    assert "  /backup verify <component> [id|latest] [--deep]  " in backup_help
    for console_only in ("/as <user>  act as", "/whoami  who you are", "/quit  leave"):
        assert f"\n  {console_only}" in backup_help
    for runbook in ("dr-test", "postgres-restore", "full-recovery"):
        assert f"/dr start {runbook}" in out
    assert "Monthly DR test (a drill)" in out
    # Who holds each role that would do: an incident commander is not called an operator.
    assert (
        "ask an admin to add you to slack.roles.operators "
        "(today operators: @sre; incident_commanders: @incident-commanders)"
    ) in out
    assert f"postgres: no backup '{missing}'\n  see: /backup list postgres\n" in out
    assert "kosmos-backup list" not in out


def test_the_console_board_shows_the_last_drill(redis_url: str, tmp_path: Path) -> None:

    store = tmp_path / "store"
    (store / "_dr").mkdir(parents=True)
    (store / "_dr" / "last-drill.json").write_text(json.dumps(DRILL))
    env = console_env(redis_url, store, KOSMOS_BACKUP_STATE_DIR=str(tmp_path / "state"))
    result = subprocess.run(
        ["kosmos-backup", "bot", "--console"],
        input="/backup status\n/quit\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"\n  {DRILL_LINE}\n" in result.stdout
