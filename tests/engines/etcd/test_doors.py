"""etcd's restore doors: ``/restore etcd latest --to TIME --target DIR`` at the console, approved
by a second person and run on the node's worker, and ``restore-request`` by an explicit id."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.engines.doors import REQUEST_ID, as_person, cli_identities, json_of
from tests.engines.etcd.etcd_server import EtcdServer
from tests.scenarios.bot_process import running_worker
from tests.scenarios.console_session import ConsoleSession
from workers.context import Context
from workers.core.errors import PermissionDenied, UsageError
from workers.core.restore_plan import job_params, plan_from_params
from workers.engines.etcd import backup
from workers.restore.planning import recheck_target, resolve_plan, validate_plan

pytestmark = pytest.mark.timeout(240)
KEYS = 200


@pytest.fixture
def env(etcd: EtcdServer, redis_url: str, tmp_path: Path) -> dict[str, str]:
    """The example config on a file store and the live etcd (with keys), an approval key."""
    etcd.put_many((f"/registry/k{i:04d}", f"value-{i}") for i in range(KEYS))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
    return {
        **base,
        "KOSMOS_BACKUP_CONFIG": str(EXAMPLE_CONFIG),
        "KOSMOS__REDIS__URL": redis_url,
        "KOSMOS__STORAGE__URL": f"file://{tmp_path / 'store'}",
        "KOSMOS__COMPONENTS__ETCD__ENDPOINTS": f"[{etcd.url}]",
        "KOSMOS__COMPONENTS__ETCD__SNAPSHOT_DIR": str(tmp_path / "snapshots"),
        "KOSMOS__APPROVAL_KEY": "console-etcd-approval-key-0123456",
        "KOSMOS__JOBS__RETRY_INTERVALS": "[]",
        "KOSMOS_BACKUP_STATE_DIR": str(tmp_path / "state"),
    }


@pytest.fixture
def console(env: dict[str, str], tmp_path: Path) -> Iterator[ConsoleSession]:
    """The console as @sre, and a worker on etcd's queue (the node's)."""
    with (
        running_worker(env, tmp_path / "worker.log", "kosmos-etcd"),
        ConsoleSession(env) as session,
    ):
        session.expect(r"kosmos-backup console — you are @sre")
        yield session


def run(console: ConsoleSession, command: str) -> str:
    """Type a command that queues an operation; the console's line when it is done."""
    console.type(command)
    op_id = console.expect(r"queued as (op-\S+)").group(1)
    return console.expect(rf"^{op_id} .* — (done|failed)").string


def keys_in(data_dir: Path, root: Path) -> int:
    """How many keys an etcd started on the restored ``data_dir`` serves."""
    root.mkdir()
    back = EtcdServer(root, data_dir=data_dir, name="default").start()
    try:
        return back.count()
    finally:
        back.stop()


def test_etcd_comes_back_as_of_a_time_approved_by_a_second_person(
    console: ConsoleSession, etcd: EtcdServer, tmp_path: Path
) -> None:
    assert "Backup of etcd — done" in run(console, "/backup run etcd")
    before = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    etcd.ctl("del", "/registry/", "--prefix")
    assert "Backup of etcd — done" in run(console, "/backup run etcd")
    live = tmp_path / "live-data"
    (live / "member").mkdir(parents=True)
    console.type(f"/restore etcd latest --to {before} --target {live} -- over the live one")
    console.expect(rf"{live} is not empty: a restore never writes over a data directory")
    console.type(f"/restore etcd latest --to {before} --target restored -- relative")
    console.expect(r"'restored' is not an absolute path")
    target = tmp_path / "restored"
    console.type(f"/restore etcd latest --to {before} --target {target} -- the keys were deleted")
    request = console.expect(r"Restore request (rr-\S+) is waiting").group(1)
    console.type("/as @sre-leads")
    console.expect(r"you are @sre-leads")
    console.type(f"/restore approve {request}")
    op_id = console.expect(rf"You approved {request}; restore (op-\S+) is queued").group(1)
    console.expect(rf"{op_id} Restore of etcd — done")
    assert [p.name for p in live.iterdir()] == ["member"]  # refused: nothing written
    assert keys_in(target, tmp_path / "back") == KEYS  # the snapshot from before the delete
    assert etcd.count() == 0  # the live etcd was never touched


def test_the_cli_asks_for_an_explicit_snapshot_and_a_second_person_approves(
    env: dict[str, str], etcd: EtcdServer, tmp_path: Path
) -> None:
    env = env | cli_identities()
    made = json_of(as_person(env, "UALICE", "backup", "etcd", "--local", "--json"))
    etcd.ctl("del", "/registry/k0", "--prefix")
    json_of(as_person(env, "UALICE", "backup", "etcd", "--local", "--json"))
    target = tmp_path / "restored"
    asked = as_person(
        env, "UALICE", "restore-request", "etcd", made["id"], "--target", str(target),
        "--reason", "the first snapshot, from the command line",
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    found = REQUEST_ID.search(asked.stdout)
    assert found is not None, asked.stdout
    with running_worker(env, tmp_path / "worker.log", "kosmos-etcd"):
        done = as_person(env, "UBOB", "approve", found.group(0), "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert keys_in(target, tmp_path / "back") == KEYS


def test_the_worker_refuses_once_the_approved_data_dir_is_no_longer_new(
    etcd: EtcdServer, etcd_context: Callable[..., Context], tmp_path: Path
) -> None:
    etcd.put_many([("a", "1")])
    ctx = etcd_context(etcd)
    made = backup.backup(ctx, "etcd")
    target = tmp_path / "restored"
    plan = resolve_plan(ctx, "etcd", "latest", target=str(target))
    validate_plan(ctx, plan)
    assert plan.backup_id == made.id and plan.options == {"data_dir": str(target)}
    # The worker rebuilds the plan from the job: the digest the approval signed.
    assert plan_from_params("etcd", job_params(plan)).digest() == plan.digest()
    recheck_target(ctx, plan)  # still new: it may run
    target.mkdir()
    (target / "member").mkdir()
    with pytest.raises(PermissionDenied, match="not empty"):
        recheck_target(ctx, plan)


def test_bad_points_are_refused_before_anyone_approves(
    etcd: EtcdServer, etcd_context: Callable[..., Context], tmp_path: Path
) -> None:
    ctx = etcd_context(etcd)
    made = backup.backup(ctx, "etcd")
    target = str(tmp_path / "restored")
    early = made.finished_at - timedelta(days=1)
    with pytest.raises(UsageError, match="no good backup of etcd finished by"):
        resolve_plan(ctx, "etcd", "latest", target=target, point=early)
    with pytest.raises(UsageError, match="a backup id or --to, not both"):
        resolve_plan(ctx, "etcd", made.id, target=target, point=made.finished_at)
    with pytest.raises(UsageError, match="never writes over its live data"):
        resolve_plan(ctx, "etcd", "latest", in_place=True)
    with pytest.raises(UsageError, match="takes no --database"):
        resolve_plan(ctx, "etcd", "latest", target=target, database="app")
    assert not Path(target).exists()
