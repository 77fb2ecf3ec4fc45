"""The operation contract: what every producer sends is what its job reads.

Each producer (the CLI, the chat handlers Slack and the console share, the scheduler and its
reaper, a runbook run, an approved restore) is driven for real against Redis and the store;
the RQ job it leaves is read back as the worker reads it, and its typed parameters must be
exactly what the command asked for, on the job path and queue of its kind.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from rq import Queue
from rq.job import Job

from bot.handlers import Caller, Desk, dispatch
from bot.roles import Authorizer, SelfNamedGroups
from tests.conftest import EXAMPLE_CONFIG
from workers import queues
from workers.context import Context
from workers.core.approvals import Verdict, open_request
from workers.core.config import Settings
from workers.core.events import ChatContext
from workers.core.operations import (
    AnyParams,
    BackupParams,
    DrStepParams,
    OperationKind,
    OperationRequest,
    OperationState,
    PostgresRestoreOptions,
    PruneParams,
    RestoreParams,
    RpoCheckParams,
    SweepParams,
    VerifyParams,
)
from workers.core.restore_plan import RestorePlan
from workers.restore.requests import decide_request, store_of
from workers.runbooks import flow as runbook_flow
from workers.scheduler import Scheduler
from workers.state.redis_state import RedisState

pytestmark = pytest.mark.timeout(120)
KEY = "contract-approval-key-0123456789"
RUNBOOK = """
name: contract
title: The contract's runbook
steps:
  - id: verify
    title: Verify the newest backup
    kind: job
    operation: postgres.verify
    params: {component: postgres, backup: latest}
"""


@dataclass
class World:
    """Settings on the test Redis and a local store holding two postgres backups."""

    settings: Settings
    env: dict[str, str]
    older: str
    newer: str
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    notes: dict[str, str] = field(default_factory=dict)

    def ctx(self) -> Context:
        return Context(self.settings)

    def cli(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")} | self.env
        done = subprocess.run(
            ["kosmos-backup", "--config", str(EXAMPLE_CONFIG), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr

    def chat(self, source: str, text: str) -> None:
        ctx = self.ctx()
        desk = Desk(ctx, Authorizer(self.settings.slack.roles, SelfNamedGroups()))
        chat = ChatContext(source=source, channel="COPS", user="@sre")
        dispatch(desk, Caller("@sre", chat), "/backup", text)


OTHER_COMPONENTS = ("MINIO", "ETCD", "KUBERNETES", "SECRETS")


@pytest.fixture
def world(make_settings: Callable[..., Settings], redis_url: str, tmp_path: Path) -> World:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "contract.yaml").write_text(RUNBOOK)
    env = {
        "KOSMOS__STORAGE__URL": f"file://{tmp_path}/store",
        "KOSMOS__REDIS__URL": redis_url,
        "KOSMOS__APPROVAL_KEY": KEY,
        "KOSMOS__DR__RUNBOOKS_DIR": str(tmp_path / "runbooks"),
        "KOSMOS__DR__DR_TEST_ENABLED": "false",
        # PostgreSQL's producers are the subject; the example's other components stay quiet.
        **{f"KOSMOS__COMPONENTS__{name}__ENABLED": "false" for name in OTHER_COMPONENTS},
    }
    settings = make_settings(env=env)
    repo = Context(settings).repo
    ids = []
    for minutes in (180, 120):  # the hourly dump is due, and no base backup exists
        repo.clock = lambda m=minutes: datetime.now(UTC) - timedelta(minutes=m)  # type: ignore[misc]
        with repo.begin("postgres", "postgres-logical") as writer:
            writer.write("data", [b"payload"], compress=False, encrypt=False)
            ids.append(writer.commit(source={}).id)
    return World(settings, env, ids[0], ids[1])


def scheduler_tick(world: World) -> None:
    Scheduler(world.ctx()).once()


def reaper(world: World) -> None:
    """A backup whose worker died: the scheduler's reaper fails it and sweeps after it."""
    ctx = world.ctx()
    state = RedisState(ctx.redis, world.settings.redis.key_prefix)
    request = queues.new_request("backup", "postgres")
    world.notes["dead"] = request.op_id
    state.record_operation(request, "kosmos-default", world.now)
    state.update_operation(request.op_id, state=OperationState.RUNNING.value)
    state.beat(request.op_id, world.now - timedelta(hours=1))
    Scheduler(ctx).once()


def runbook_run(world: World) -> None:
    ctx = world.ctx()
    runbook_flow.start(ctx, "contract", {}, started_by="@sre", chat=ChatContext(source="cli"))


def approved_restore(world: World) -> None:
    ctx = world.ctx()
    plan = RestorePlan(component="postgres", backup_id=world.older, target="kb_contract_r")
    request = open_request(
        plan, requester="UALICE", reason="t", now=ctx.clock(), ttl=timedelta(hours=1), required=1
    )
    store_of(ctx).create(request)
    decide_request(
        ctx, request.id, user="UBOB", verdict=Verdict.APPROVE, holds_approver_role=True, via="cli"
    )


Expected = list[tuple[OperationKind, str | None, AnyParams, str]]
"""Each job a producer should leave: kind, component, parameters, queue."""


def ticked() -> Expected:
    """What one scheduler tick enqueues here: both backup tracks and the upkeep."""
    return [
        (OperationKind.BACKUP, "postgres", BackupParams(), "kosmos-default"),
        (OperationKind.BACKUP, "postgres", BackupParams(base=True), "kosmos-postgres"),
        (OperationKind.RPO_CHECK, None, RpoCheckParams(quiet=True), "kosmos-default"),
        (OperationKind.PRUNE, None, PruneParams(), "kosmos-default"),
        (OperationKind.SWEEP, None, SweepParams(), "kosmos-default"),
    ]


def _case(name: str, produce: Callable[[World], None], expect: Callable[[World], Expected]) -> Any:
    return pytest.param(produce, expect, id=name)


CASES = [
    _case(
        "cli-backup",
        lambda w: w.cli("backup", "postgres"),
        lambda w: [(OperationKind.BACKUP, "postgres", BackupParams(), "kosmos-default")],
    ),
    _case(
        "cli-backup-base",
        lambda w: w.cli("backup", "postgres", "--base"),
        lambda w: [(OperationKind.BACKUP, "postgres", BackupParams(base=True), "kosmos-postgres")],
    ),
    _case(
        "cli-verify-by-id",
        lambda w: w.cli("verify", "postgres", w.older, "--deep"),
        lambda w: [
            (
                OperationKind.VERIFY,
                "postgres",
                VerifyParams(backup=w.older, deep=True),
                "kosmos-default",
            )
        ],
    ),
    _case(
        "cli-prune",
        lambda w: w.cli("prune", "postgres", "--dry-run"),
        lambda w: [(OperationKind.PRUNE, "postgres", PruneParams(dry_run=True), "kosmos-default")],
    ),
    _case(
        "slack-run-base",
        lambda w: w.chat("slack", "run postgres --base"),
        lambda w: [(OperationKind.BACKUP, "postgres", BackupParams(base=True), "kosmos-postgres")],
    ),
    _case(
        "console-verify-by-id",
        lambda w: w.chat("console", f"verify postgres {w.older} --deep"),
        lambda w: [
            (
                OperationKind.VERIFY,
                "postgres",
                VerifyParams(backup=w.older, deep=True),
                "kosmos-default",
            )
        ],
    ),
    _case(
        "console-backup",
        lambda w: w.chat("console", "run postgres"),
        lambda w: [(OperationKind.BACKUP, "postgres", BackupParams(), "kosmos-default")],
    ),
    _case(
        "slack-verify-latest",
        lambda w: w.chat("slack", "verify postgres latest"),
        # "latest" is resolved by the job when it runs, not by the chat when it is typed.
        lambda w: [
            (OperationKind.VERIFY, "postgres", VerifyParams(backup="latest"), "kosmos-default")
        ],
    ),
    _case("scheduler", scheduler_tick, lambda w: ticked()),
    _case(
        "scheduler-reaper",
        reaper,
        lambda w: [
            *ticked(),
            (
                OperationKind.SWEEP,
                "postgres",
                SweepParams(before=w.now, after_op=w.notes["dead"]),
                "kosmos-default",
            ),
        ],
    ),
    _case(
        "runbook-step",
        runbook_run,
        lambda w: [
            (
                OperationKind.DR_STEP,
                None,
                DrStepParams(run_id="*", step_id="verify", queue="kosmos-default"),
                "kosmos-default",
            )
        ],
    ),
    _case(
        "approved-restore",
        approved_restore,
        lambda w: [
            (
                OperationKind.RESTORE,
                "postgres",
                RestoreParams(
                    backup=w.older,
                    options=PostgresRestoreOptions(target_database="kb_contract_r"),
                    request_id="*",
                    approval_id="*",
                ),
                "kosmos-default",
            )
        ],
    ),
]


@pytest.mark.parametrize(("produce", "expect"), CASES)
def test_what_each_producer_sends_is_what_its_job_reads(
    world: World,
    redis_url: str,
    produce: Callable[[World], None],
    expect: Callable[[World], Expected],
) -> None:
    produce(world)
    found = sorted(
        enqueued(world, redis_url), key=lambda j: (j[0].kind.value, j[0].component or "", j[1])
    )
    wanted = sorted(expect(world), key=lambda e: (e[0].value, e[1] or "", e[3]))
    assert [(r.kind, r.component, queue) for r, queue, _ in found] == [
        (kind, component, queue) for kind, component, _, queue in wanted
    ]
    for (request, _, func), (kind, _, params, _) in zip(found, wanted, strict=True):
        assert func == queues.JOB_PATHS[kind]
        assert type(request.params) is type(params)
        assert _fill(params, request.params) == request.params


def enqueued(world: World, redis_url: str) -> Iterator[tuple[OperationRequest, str, str]]:
    """Every job waiting on any queue, parsed as its worker parses it."""
    client = redis_lib.Redis.from_url(redis_url)
    for name in queues.all_queues(world.settings):
        for job in Queue(world.settings.rq_queue(name), connection=client).jobs:
            assert isinstance(job, Job) and len(job.args) == 1
            yield OperationRequest.model_validate(job.args[0]), name, str(job.func_name)


def _fill(expected: Any, actual: Any) -> Any:
    """``expected`` with its ``*`` fields (ids made at run time) taken from ``actual``.

    The reaper's ``before`` is the scheduler's clock: it must be a time, close to the test's.
    """
    updates: dict[str, Any] = {}
    for name in type(expected).model_fields:
        if getattr(expected, name) == "*":
            updates[name] = getattr(actual, name)
    if isinstance(expected, SweepParams) and expected.before is not None:
        assert actual.before is not None and abs(actual.before - expected.before) < timedelta(
            minutes=1
        )
        updates["before"] = actual.before
    return expected.model_copy(update=updates)


def test_a_payload_its_job_cannot_read_is_failed_never_guessed(
    world: World, redis_url: str
) -> None:
    ctx = world.ctx()
    request = queues.new_request("verify", "postgres", params=VerifyParams(backup=world.older))
    queues.submit(ctx.redis, world.settings, request)
    job = Job.fetch(request.op_id, connection=ctx.redis)
    payload = job.args[0]
    payload["params"] = {"ref": world.older, "deep": False}  # what the CLI used to send
    job.args = (payload,)
    job.save()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOSMOS")} | world.env
    subprocess.run(
        ["kosmos-backup", "--config", str(EXAMPLE_CONFIG), "worker", "--burst"],
        env=env,
        capture_output=True,
        timeout=90,
        check=True,
    )
    record = queues.operation(ctx.redis, world.settings, request.op_id)
    assert record is not None and record["state"] == "failed"
    failed = queues.operation_events(ctx.redis, world.settings, request.op_id)[-1]
    assert failed.error_class == "UsageError"
    assert "params.ref: Extra inputs are not permitted" in (failed.message or "")
    assert Job.fetch(request.op_id, connection=ctx.redis).get_status() == "failed"
    repo = ctx.repo
    assert [repo.manifest(i).verification for i in (world.older, world.newer)] == [None, None]
