"""`kosmos-backup up` with no config is a complete local demo (issue 12, items 7, 8 and 10).

Driven as it was found: the real command, real keystrokes on stdin, the real worker and
scheduler beside it, the machine's PostgreSQL and Redis (the test database).
"""

from __future__ import annotations

import re
import stat
import sys
from pathlib import Path

from tests.pgsample import create_database, databases, rows_of
from tests.scenarios.typist import Typist, clean_env
from tests.sync import wait_until
from workers import components as engine
from workers.config_loader import load_settings
from workers.context import Context
from workers.core.rpo import AlertState
from workers.state.redis_state import RedisState

KOSMOS = str(Path(sys.executable).with_name("kosmos-backup"))
SOURCE_SQL = """
CREATE TABLE accounts (id int PRIMARY KEY, name text);
INSERT INTO accounts SELECT g, md5(g::text) FROM generate_series(1, 500) AS g;
"""
NOT_BUILT: tuple[str, ...] = ()  # every kind has its engine now
DISABLED = ("minio", "etcd", "kubernetes", "secrets")
"""Built, but off in the defaults: etcd needs an etcd (or K3s) on the machine, Velero a
cluster the laptop does not have, secrets age recipients."""


def test_up_with_no_config_lets_two_people_restore_at_once(tmp_path: Path, redis_url: str) -> None:
    home = tmp_path / "home"
    with databases() as fresh:
        source, target = fresh("demo_src"), fresh("demo_rst")
        create_database(source, SOURCE_SQL)
        env = clean_env(
            home,
            KOSMOS__REDIS__URL=redis_url,
            KOSMOS__COMPONENTS__POSTGRES__DATABASES=f"[{source}]",
        )
        # One good backup first: the scheduler then has nothing due, the restore has a source.
        engine.backup(Context(load_settings(environ=env)), "postgres")
        key_file = home / ".local" / "state" / "kosmos-backup" / "approval.key"
        key = key_file.read_text()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key.strip()) == 64

        up = Typist([KOSMOS, "up"], env)
        try:
            up.expect(r"^Redis: redis://127\.0\.0\.1:6379/\d+ \(configured\)$")
            up.expect(r"you are alice \(operators\)")
            _board_shows_what_can_run(up)
            for user, role in (("carol", "incident_commanders"), ("dave", "viewers")):
                up.type(f"/as {user}")
                up.expect(rf"you are {user}: {role}")
            up.type("/as alice")
            up.type(f"/restore postgres latest --target {target} -- trying the two-person rule")
            request_id = up.expect(r"(rr-\d{8}T\d{4}Z-[0-9a-f]{6})").group(1)
            up.type(f"/restore approve {request_id}")
            up.expect(r"you may not use restore approve: it needs the approvers role")
            up.type("/as bob")
            up.expect(r"you are bob: approvers")
            up.type(f"/restore approve {request_id}")
            up.expect(r"Restore of postgres — done", timeout=120)
            # The scheduler's first tick queues the RPO check; under load it can still be
            # waiting behind the restore on the one worker when the restore is done.
            wait_until(
                lambda: set(_monitor_states(redis_url, env)) >= {"postgres", *NOT_BUILT},
                60,
                "the RPO monitor to run",
            )
        finally:
            assert up.quit() == 0, up.err
        output = up.out + up.err
        assert "approval_key is not set" not in output and "not named in slack.roles" not in output
        assert "Traceback" not in output
        query = "SELECT count(*), md5(string_agg(name, ',' ORDER BY id)) FROM accounts"
        assert rows_of(target, query) == rows_of(source, query)
        assert key_file.read_text() == key  # generated once, kept
        _no_alarm_for_what_cannot_run(up, redis_url, env)
        worker_log = (home / ".local" / "state" / "kosmos-backup" / "worker.log").read_text()
        assert "Traceback" not in worker_log


def _board_shows_what_can_run(up: Typist) -> None:
    up.type("/backup status")
    up.expect(r"postgres \(postgres\)\s+│ ● fresh")
    for name in ("minio", "etcd", "kubernetes", "secrets"):  # in the board's order
        line = up.expect(rf"│ {name} \(\w+\)\s+│").string
        shown = "◌ not built yet" if name in NOT_BUILT else "disabled"
        assert shown in line and "never backed up" not in line and "now" not in line


def _monitor_states(redis_url: str, env: dict[str, str]) -> dict[str, AlertState]:
    """The RPO monitor's saved alert states, by component."""
    import redis as redis_lib

    client = redis_lib.Redis.from_url(redis_url)
    try:
        prefix = load_settings(environ=env).redis.key_prefix  # the install `up` made
        return RedisState(client, prefix).alert_states()
    finally:
        client.close()


def _no_alarm_for_what_cannot_run(up: Typist, redis_url: str, env: dict[str, str]) -> None:
    """The monitor ran (its states are saved) and raised nothing for the engines not built."""
    states = _monitor_states(redis_url, env)
    assert set(states) >= {"postgres", *NOT_BUILT}, "the RPO monitor never ran"
    assert not any(state.active for state in states.values())
    assert not re.search(r"^alert: ", up.out, re.MULTILINE)


def test_config_check_on_the_defaults_names_what_is_not_built(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    check = Typist([KOSMOS, "config", "check"], env)
    assert check.quit() == 0, check.err
    out = check.out
    assert out.startswith("config ok: storage file://, 5 components")
    assert "  postgres: postgres, every 1h, keep 30d, queue kosmos-default" in out.splitlines()
    assert "problem" not in out  # continuous archiving is off on the defaults' local store
    for name in NOT_BUILT:
        assert re.search(rf"{name}: .* — not built yet \(on the board, never scheduled\)", out)
    for name in DISABLED:
        assert re.search(rf"^  {name}: \w+, every \w+, keep \w+, queue [\w-]+$", out, re.M)


def test_config_check_says_continuous_archiving_cannot_use_a_local_store(tmp_path: Path) -> None:
    env = clean_env(tmp_path, KOSMOS__COMPONENTS__POSTGRES__CONTINUOUS="true")
    check = Typist([KOSMOS, "config", "check"], env)
    assert check.quit() == 2, check.err
    assert check.out.startswith("config has 1 problem: storage file://")
    assert (
        "problem: components.postgres.continuous: continuous archiving (WAL, base backups, PITR) "
        "needs an s3:// store, and storage.url is file://" in check.out
    )
    assert "hint: set components.postgres.continuous: false" in check.out
