"""What the worker's guard refuses before it touches anything, as people would meet it: a job
enqueued by hand that names someone's pending request, and a target that is the live source
under another spelling (decided by the servers' identity, not by how the DSN is written).
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_lib
from rq import Queue

from tests.conftest import EXAMPLE_CONFIG
from tests.pgcluster import PgCluster, scratch_dir
from tests.pgsample import database_exists
from tests.scenarios.restore_world import (
    HELD_QUEUE,
    World,
    card_text,
    click,
    request_from,
    restore_ops,
    run_worker,
    slash,
    stop,
)
from tests.services import free_port
from workers.config_loader import parse_settings
from workers.context import Context, utc_now
from workers.core.approvals import RequestState
from workers.core.audit import AuditAction
from workers.core.errors import UsageError
from workers.core.events import ChatContext, EventType
from workers.core.ids import new_operation_id
from workers.core.operations import OperationKind, OperationRequest
from workers.core.restore_plan import job_params
from workers.restore.planning import resolve_plan, validate_plan
from workers.restore.requests import audit_of, store_of


@pytest.fixture(scope="module")
def scratch() -> Iterator[PgCluster]:
    """Another PostgreSQL server, listening on two loopback addresses."""
    cluster = PgCluster(scratch_dir("ident"), settings={"listen_addresses": "127.0.0.1,127.0.0.2"})
    try:
        yield cluster.init().start()
    finally:
        cluster.remove()


def system_id(cluster: PgCluster) -> str:
    return str(cluster.execute("SELECT system_identifier FROM pg_control_system()")[0][0])


def local_hostname() -> str:
    """The machine's own name when it resolves to a loopback address here, else localhost."""
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 5432)}
    except OSError:
        return "localhost"
    return name if addresses and all(a.startswith("127.") for a in addresses) else "localhost"


@pytest.mark.parametrize(
    "spelling",
    [
        "host=127.0.0.1 port=05432 user=postgres dbname={db}",
        "host=127.0.0.1,localhost user=postgres dbname={db}",
        "host={hostname} user=postgres dbname={db}",
        "host={hostname} port=5432 user=postgres",  # no dbname: every dump under its own name
    ],
)
def test_the_live_source_under_another_spelling_needs_in_place(
    world: World, redis_url: str, spelling: str
) -> None:
    target = spelling.format(db=world.source, hostname=local_hostname())
    answer = slash(world, f'postgres latest --target "{target}" -- copy it', "UALICE")
    assert answer.status == 200
    assert "is the live source" in json.dumps(answer.body), answer.body
    assert store_of(world.ctx()).recent() == []


def test_another_loopback_address_of_the_source_server_is_the_live_source(
    world: World, redis_url: str, scratch: PgCluster
) -> None:
    # The component's source is the scratch server at 127.0.0.1; 127.0.0.2 reaches it too.
    ctx = _ctx(world, KOSMOS__COMPONENTS__HELD__DSN=scratch.dsn)
    target = f"host=127.0.0.2 port={scratch.port} user=postgres dbname=postgres"
    plan = resolve_plan(ctx, "held", target=target)
    with pytest.raises(UsageError, match="is the live source"):
        validate_plan(ctx, plan)
    assert plan.target_identity is not None
    assert plan.target_identity.label() == (
        f"same server as the live source (system id {system_id(scratch)})"
    )
    validate_plan(ctx, resolve_plan(ctx, "held", target=target, in_place=True))


def test_another_server_is_named_on_the_card_and_refused_once_it_is_the_live_source(
    world: World, redis_url: str, scratch: PgCluster
) -> None:
    target = f"host=127.0.0.1 port={scratch.port} user=postgres"
    request_id = request_from(slash(world, f'held latest --target "{target}" -- copy', "UALICE"))
    assert f"other server (system id {system_id(scratch)})" in card_text(world, request_id)
    click(world, request_id, "UBOB", "approve")
    # Approved, then the live source moves onto that very server before the job runs.
    moved = {**world.env, "KOSMOS__COMPONENTS__HELD__DSN": scratch.dsn}
    _drain(world, env=moved)

    request = store_of(world.ctx()).get(request_id)
    assert request.state == RequestState.REFUSED
    assert "is now the live source" in request.note and "other server" in request.note
    assert scratch.execute("SELECT 1 FROM pg_database WHERE datname = %s", (world.source,)) == []
    [op] = restore_ops(world)
    assert op["state"] == "failed"


def test_an_unreachable_target_is_said_on_the_card_and_asked_again_by_the_worker(
    world: World, redis_url: str
) -> None:
    dead = free_port()
    target = f"host=127.0.0.1 port={dead} user=postgres dbname=copy"
    request_id = request_from(slash(world, f'held latest --target "{target}" -- copy', "UALICE"))
    card = card_text(world, request_id)
    assert "target unreachable at plan time: cannot connect to" in card
    assert f"port {dead} failed: Connection refused" in card
    with pytest.raises(UsageError, match="did not say which server it is"):
        validate_plan(world.ctx(), resolve_plan(world.ctx(), "held", target=target, in_place=True))
    click(world, request_id, "UBOB", "approve")
    _drain(world)
    request = store_of(world.ctx()).get(request_id)
    assert request.state == RequestState.REFUSED
    assert request.note.startswith(f"cannot tell which server target postgres@127.0.0.1:{dead}")


def test_a_job_by_hand_naming_a_pending_request_leaves_the_request_alone(
    world: World, redis_url: str
) -> None:
    target = world.fresh("pending")
    request_id = request_from(slash(world, f"held latest --target {target} -- pending", "UALICE"))
    before = store_of(world.ctx()).get(request_id)
    assert before.state == RequestState.PENDING
    op_id = new_operation_id(utc_now())
    forged = OperationRequest(
        op_id=op_id,
        kind=OperationKind.RESTORE,
        component="held",
        params=job_params(before.plan).model_copy(
            update={"approval_id": "ap-0000", "request_id": request_id}
        ),
        chat=ChatContext(source="cli"),
        requested_at=utc_now(),
        requested_by="UMALLORY",
    )
    queue = Queue(
        world.ctx().settings.rq_queue(HELD_QUEUE), connection=redis_lib.Redis.from_url(redis_url)
    )
    queue.enqueue("workers.jobs.restore.run", forged.model_dump(mode="json"), job_id=op_id)
    _drain(world)

    assert store_of(world.ctx()).get(request_id) == before
    assert not database_exists(target)
    [failed] = [e for _, e in _events(world) if e.op_id == op_id and e.type == EventType.FAILED]
    assert "pending, not approved" in (failed.message or "")
    refusals = [r for r in audit_of(world.ctx()).tail(50) if r.action == AuditAction.REFUSE]
    assert [r.details["requested_by"] for r in refusals] == ["UMALLORY"]

    # The real approval still runs the restore.
    click(world, request_id, "UBOB", "approve")
    _drain(world)
    assert store_of(world.ctx()).get(request_id).state == RequestState.EXECUTED
    assert database_exists(target)
    assert [o["state"] for o in restore_ops(world)] == ["finished"]


def _ctx(world: World, **env: str) -> Context:
    """A context with ``world``'s settings and some environment overrides."""
    return Context(parse_settings(EXAMPLE_CONFIG.read_text(), {**world.env, **env}))


def _drain(world: World, env: dict[str, str] | None = None) -> None:
    """Run a burst worker on the held queue until it is empty."""
    if env is None:
        worker = run_worker(world, HELD_QUEUE, burst=True)
    else:
        log = open(world.folder / "worker.log", "ab")  # noqa: SIM115 - the child owns it
        argv = ["kosmos-backup", "worker", "--queues", HELD_QUEUE, "--burst"]
        worker = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        worker.wait(60)
    finally:
        stop(worker)


def _events(world: World) -> list[Any]:
    from workers import queues

    ctx = world.ctx()
    return queues.read_events(ctx.redis, ctx.settings, "0-0", count=10_000)
