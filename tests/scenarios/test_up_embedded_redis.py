"""`kosmos-backup up` on a machine with no Redis and no PostgreSQL, driven through stdin.

"Nothing listens at the default address" is made literally true, with no test switch in the
product: `up` runs in a network namespace of its own (`unshare --net`, loopback up), where
127.0.0.1:6379 and :5432 are closed. The embedded server's unix socket lives in the state
directory, on the shared filesystem, so the test reads it from outside.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from tests.scenarios.typist import Typist, clean_env
from tests.services import free_port
from workers.settings import load_settings
from workers.state.redis_state import RedisState

KOSMOS = str(Path(sys.executable).with_name("kosmos-backup"))
PASSWORD = "s3cret-pg-pw"
ISOLATED = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$@"']


@pytest.fixture
def state() -> Iterator[Path]:
    """A short state directory (a unix socket path must fit in 108 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="kb-up-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def up_env(home: Path, state: Path, **extra: str) -> dict[str, str]:
    dsn = f"host=127.0.0.1 port={free_port()} user=postgres password={PASSWORD}"
    return clean_env(
        home,
        KOSMOS_BACKUP_STATE_DIR=str(state),
        KOSMOS__COMPONENTS__POSTGRES__DSN=dsn,
        **extra,
    )


def test_up_without_redis_embeds_one_that_keeps_queued_work_across_restarts(
    tmp_path: Path, state: Path
) -> None:
    env = up_env(tmp_path, state)
    first = Typist([*ISOLATED, KOSMOS, "up"], env)
    try:
        first.expect(
            r"^Redis: embedded \(valkey [\d.]+, started by this `up`\); its data lives in "
            + str(state / "redis")
            + "$"
        )
        assert first.seen[0].startswith("Redis: embedded")  # the console's first line says so
        socket = state / "redis" / "redis.sock"
        server = redis_lib.Redis(unix_socket_path=str(socket))
        server_pid = int(server.info("server")["process_id"])
        assert server.config_get("appendonly") == {"appendonly": "yes"}

        # No PostgreSQL either: the board says so, with the DSN (password hidden) and the way out.
        first.type("/backup status")
        first.expect(r"✕ unreachable")
        note = first.expect(r"postgres unreachable at .*password=\*\*\*").string
        assert "(connection refused)" in note and "port=" in note
        first.expect(r"point it elsewhere with KOSMOS__COMPONENTS__POSTGRES__DSN=")
        assert PASSWORD not in first.out

        first.type("/backup run postgres")
        op_id = first.expect(r"Backup of postgres queued as (op-\S+)").group(1)
        first.expect(
            rf"{op_id} Backup of postgres — failed: cannot connect to postgres@127\.0\.0\.1"
        )

        # A second `up` on the same state directory shares the running server.
        second = Typist([*ISOLATED, KOSMOS, "up"], env)
        try:
            second.expect(r"^Redis: embedded \(valkey [\d.]+, shared with another `up`\)")
            second.expect(r"kosmos-backup console")
        finally:
            assert second.quit() == 0, second.err
        assert "embedded Redis left running for the other `up` using it" in second.err
        assert server.ping() and int(server.info("server")["process_id"]) == server_pid
    finally:
        assert first.quit() == 0, first.err
    assert "embedded Redis stopped" in first.err
    assert not _running(server_pid)
    assert "Traceback" not in first.err + first.out
    worker_log = (state / "worker.log").read_text()
    assert "operation failed" in worker_log and "cannot connect to postgres@" in worker_log
    assert "Traceback" not in worker_log and PASSWORD not in worker_log

    # Restarted: a new server on the same append-only file still has the backup's record.
    again = Typist([*ISOLATED, KOSMOS, "up"], env)
    try:
        again.expect(r"^Redis: embedded \(valkey [\d.]+, started by this `up`\)")
        again.expect(r"kosmos-backup console")
        client = redis_lib.Redis(unix_socket_path=str(socket))
        prefix = load_settings(environ=env).redis.key_prefix  # the install `up` made
        record = RedisState(client, prefix).operation(op_id)
        assert record is not None and record["state"] == "failed"
        assert record["request"]["component"] == "postgres"
        server_pid = int(client.info("server")["process_id"])
        client.close()
        # A `kill` (or a closed terminal) ends `up` like /quit: nothing is left behind.
        children = _children(again.proc.pid)
        assert len(children) == 3 and server_pid in children  # with the worker and scheduler
        again.proc.terminate()
        assert again.proc.wait(60) == 0
    finally:
        again.quit()
    assert "embedded Redis stopped" in again.err
    for pid in children:
        assert not _running(pid), pid


def test_up_with_a_configured_redis_that_is_dead_names_it_and_exits_2(
    tmp_path: Path, state: Path
) -> None:
    url = f"redis://:hidden-pw@127.0.0.1:{free_port()}/0"
    typist = Typist([KOSMOS, "up"], up_env(tmp_path, state, KOSMOS__REDIS__URL=url))
    code = typist.quit(timeout=60)
    assert code == 2, typist.err
    shown = url.replace("hidden-pw", "***")
    assert f"error: redis.url {shown} does not answer" in typist.err
    assert "hidden-pw" not in typist.err + typist.out
    assert "Traceback" not in typist.err
    # Nothing was started, and nothing was embedded instead.
    assert not (state / "worker.log").exists() and not (state / "redis").exists()


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _running(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return True
