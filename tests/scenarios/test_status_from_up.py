"""``kosmos-backup status`` while `up` runs: answered by `up` over its socket, as the CLI would.

Whole processes throughout: the real `up` (console, worker, scheduler), the console script
(bot.launch) and the full CLI (``python -m bot.cli``), on Redis's test database, the local
store and the machine's PostgreSQL. Which path answered is read from the modules a process
loaded (tests/scenarios/status_script.py), never from how long it took.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from bot.status_socket import address, socket_path
from tests.pgsample import create_database, databases
from tests.scenarios.status_script import console_script, full_cli
from tests.scenarios.typist import Typist, clean_env
from tests.services import free_port
from workers import components as engine
from workers.config_loader import default_config_text, load_settings
from workers.context import Context

KOSMOS = str(Path(sys.executable).with_name("kosmos-backup"))
ALL_OFF = {
    f"KOSMOS__COMPONENTS__{name}__ENABLED": "false"
    for name in ("POSTGRES", "MINIO", "ETCD", "KUBERNETES", "SECRETS")
}
"""Nothing due, nothing aged: the board reads the same at any moment (for the text output)."""


def test_status_while_up_runs_is_the_cli_s_answer_from_up(tmp_path: Path, redis_url: str) -> None:
    with databases() as fresh:
        source = fresh("status_src")
        create_database(source)
        config = tmp_path / "kosmos.yaml"
        config.write_text(default_config_text())
        env = clean_env(
            tmp_path / "home",
            KOSMOS_BACKUP_CONFIG=str(config),
            KOSMOS__REDIS__URL=redis_url,
            KOSMOS__COMPONENTS__POSTGRES__DATABASES=f"[{source}]",
        )
        # A committed backup first: the state has a last good backup, and nothing is due.
        engine.backup(Context(load_settings(environ=env)), "postgres")
        up = _start_up(env)
        try:
            run_dir = socket_path(env).parent
            assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
            mode = socket_path(env).stat().st_mode
            assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600

            lean = console_script(env, tmp_path, "status", "--json")
            full = full_cli(env, "status", "--json")
            assert lean.lean, sorted(lean.packages)
            assert (lean.code, full.code) == (0, 0), lean.stderr + full.stderr
            assert _timeless(json.loads(lean.stdout)) == _timeless(json.loads(full.stdout))
            entry = json.loads(lean.stdout)["components"][0]
            assert entry["name"] == "postgres" and entry["state"] == "fresh"
            assert entry["retained"] == 1

            # Computed afresh per request: a backup committed meanwhile is on the next answer.
            engine.backup(Context(load_settings(environ=env)), "postgres")
            lean = console_script(env, tmp_path, "status", "--json")
            full = full_cli(env, "status", "--json")
            assert lean.lean and json.loads(lean.stdout)["components"][0]["retained"] == 2
            assert _timeless(json.loads(lean.stdout)) == _timeless(json.loads(full.stdout))

            # A component, --check, the config named relative to the caller's folder: from `up`.
            asked = ("status", "postgres", "--json", "--check")
            relative = env | {"KOSMOS_BACKUP_CONFIG": config.name}
            for how, args in ((relative, asked), (env, ("--config", config.name, *asked))):
                lean = console_script(how, tmp_path, *args, cwd=tmp_path)
                full = full_cli(how, *args, cwd=tmp_path)
                assert lean.lean and lean.code == full.code == 0, lean.stderr
                assert _timeless(json.loads(lean.stdout)) == _timeless(json.loads(full.stdout))

            # What `up` cannot answer as the CLI would: the CLI answers, with its own words.
            for extra_env, args in (
                ({"KOSMOS__OBJECTIVES__RPO": "2h"}, ("status", "--json")),  # another config
                ({}, ("status", "nosuch")),  # the CLI's usage error
                ({}, ("status", "--help")),  # an option the lean path does not parse
            ):
                lean = console_script(env | extra_env, tmp_path, *args)
                full = full_cli(env | extra_env, *args)
                assert not lean.lean, args
                assert (lean.code, lean.stderr) == (full.code, full.stderr)
                assert _timeless_text(lean.stdout) == _timeless_text(full.stdout)
            slower = env | {"KOSMOS__OBJECTIVES__RPO": "2h"}
            other = console_script(slower, tmp_path, "status", "--json")
            assert json.loads(other.stdout)["objectives"]["rpo"] == "2h"
        finally:
            assert up.quit() == 0, up.err
        assert not socket_path(env).exists()  # `up` took its socket with it
        assert "Traceback" not in up.out + up.err


def test_status_board_from_up_is_the_cli_s_on_a_pipe_and_a_terminal(
    tmp_path: Path, redis_url: str
) -> None:
    # PostgreSQL away: never backed up, the RPO breached, the probe's note under the board.
    away = f"host=127.0.0.1 port={free_port()} user=postgres"
    env = clean_env(
        tmp_path / "home",
        KOSMOS__REDIS__URL=redis_url,
        **ALL_OFF | {"KOSMOS__COMPONENTS__POSTGRES__ENABLED": "true"},
        KOSMOS__COMPONENTS__POSTGRES__DSN=away,
    )
    up = _start_up(env)
    try:
        lean = console_script(env, tmp_path, "status")
        assert lean.lean and lean.code == 0
        assert lean.stdout == full_cli(env, "status").stdout
        assert "Backups  (RPO 1h, RTO 4h)" in lean.stdout and "postgres unreachable" in lean.stdout
        lean = console_script(env, tmp_path, "status", "--check")
        full = full_cli(env, "status", "--check")
        assert lean.lean and (lean.code, lean.stderr) == (full.code, full.stderr) == (
            1,
            "RPO breached: postgres\n",
        )
        assert lean.stdout == full.stdout
        on_tty = {k: v for k, v in env.items() if k != "COLUMNS"} | {"TERM": "xterm-256color"}
        for size in ((97, 30), (60, 20)):
            shown = _on_terminal([KOSMOS, "status"], on_tty, size)
            assert shown == _on_terminal([sys.executable, "-m", "bot.cli", "status"], on_tty, size)
            assert b"\x1b[" in shown  # colours: rich saw a terminal on both paths
    finally:
        assert up.quit() == 0, up.err


def test_status_falls_back_to_the_cli_on_a_stale_socket_and_a_dead_up(
    tmp_path: Path, redis_url: str
) -> None:
    env = clean_env(tmp_path / "home", KOSMOS__REDIS__URL=redis_url, **ALL_OFF)
    path = socket_path(env)
    path.parent.mkdir(parents=True, mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale, address(path) as where:
        stale.bind(where)  # closed without unlinking: a file nobody listens on
    assert stat.S_ISSOCK(path.stat().st_mode)
    expected = full_cli(env, "status", "--json")
    assert expected.code == 0

    answered = console_script(env, tmp_path, "status", "--json")
    assert not answered.lean and answered.code == 0
    assert _timeless(json.loads(answered.stdout)) == _timeless(json.loads(expected.stdout))

    up = _start_up(env)  # takes the stale file over
    try:
        assert console_script(env, tmp_path, "status", "--json").lean
        children = _children(up.proc.pid)
        up.proc.send_signal(signal.SIGKILL)  # no clean-up: the socket file stays behind
        up.proc.wait()
        for child in children:
            os.kill(child, signal.SIGTERM)
        assert path.exists()
        answered = console_script(env, tmp_path, "status", "--json")
        assert not answered.lean and answered.code == 0
        assert _timeless(json.loads(answered.stdout)) == _timeless(json.loads(expected.stdout))
    finally:
        up.quit()


def _start_up(env: dict[str, str]) -> Typist:
    """`up`, once its console greets: the status socket listens before the console starts."""
    up = Typist([KOSMOS, "up"], env)
    up.expect(r"you are alice \(operators\)")
    return up


def _timeless(document: dict[str, Any]) -> dict[str, Any]:
    """The status document without the values that are a function of the moment asked."""
    for entry in document["components"]:
        assert entry.pop("age_seconds") is None or entry["last_backup"] is not None
        if entry["last_backup"] is None:
            entry.pop("next_due")  # due now: "now" moves between the two processes
    return document


def _timeless_text(text: str) -> str:
    """JSON output made timeless, any other text as it is."""
    try:
        return json.dumps(_timeless(json.loads(text)))
    except ValueError:
        return text


def _on_terminal(argv: list[str], env: dict[str, str], size: tuple[int, int]) -> bytes:
    """What ``argv`` writes to a terminal of ``size`` (columns, lines)."""
    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    proc = subprocess.Popen(argv, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:  # EIO: the process closed the terminal's last descriptor
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert proc.wait(timeout=120) == 0, shown.decode(errors="replace")
    return shown


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (`up`'s worker and scheduler)."""
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]
