"""Two-person restores as people live them: signed Slack requests and button clicks to the bot
under gunicorn, the fake Slack Web API, real RQ workers, real PostgreSQL restores.
"""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import timedelta
from typing import Any

import redis as redis_lib
from rq import Queue
from slack_sdk import WebClient

from tests.fakes.slack import post_to_bot, slash_body
from tests.pgsample import create_database, database_exists, rows_of
from tests.redis_contents import everything_in
from tests.scenarios.bot_process import SECRET
from tests.scenarios.restore_world import (
    CHANNEL,
    HELD_QUEUE,
    KEY,
    REQUEST_ID,
    TOKENS,
    World,
    audit_actions,
    card_of,
    card_text,
    click,
    ephemerals,
    request_from,
    restore_ops,
    run_worker,
    slash,
    stop,
    table_facts,
    wait_until,
)
from workers import components
from workers.context import utc_now
from workers.core.approvals import RequestState
from workers.core.audit import AuditAction
from workers.core.events import ChatContext, EventType
from workers.core.ids import new_operation_id
from workers.core.operations import (
    OperationKind,
    OperationRequest,
    PostgresRestoreOptions,
    RestoreParams,
)
from workers.restore.planning import resolve_plan
from workers.restore.requests import (
    attach_card,
    audit_of,
    open_restore_request,
    remind_unreviewed,
    store_of,
)

# -- the scenarios ------------------------------------------------------------------------------


def test_full_path_request_refusals_approval_restore_and_final_card(
    world: World, redis_url: str
) -> None:
    target = world.fresh("full")
    answer = slash(world, f"postgres latest --target {target} -- quarterly restore drill", "UALICE")
    assert answer.status == 200 and answer.seconds < 3.0
    assert answer.body["response_type"] == "ephemeral"
    request_id = request_from(answer)
    card = card_text(world, request_id)
    for shown in (
        "postgres",
        target,
        "<@UALICE>",
        "quarterly restore drill",
        "never verified",
        "restore_approve",
        "restore_deny",
        "Awaiting approval: 0 of 1",
    ):
        assert shown in card, shown

    # Self-approval and a non-approver are refused on the server; the request stays pending.
    assert click(world, request_id, "UALICE", "approve").status == 200
    assert click(world, request_id, "UVIEW", "approve").status == 200
    assert any("cannot approve it" in text for text in ephemerals(world, "UALICE"))
    assert any("approvers group" in text for text in ephemerals(world, "UVIEW"))
    assert store_of(world.ctx()).get(request_id).state == RequestState.PENDING
    assert restore_ops(world) == []

    worker = run_worker(world, "kosmos-default", burst=False)
    try:
        assert click(world, request_id, "UBOB", "approve").status == 200
        card = card_text(world, request_id)
        assert "restore_approve" not in card and "Approved by <@UBOB>" in card
        final = wait_until(
            lambda: "Took" in card_text(world, request_id) and card_text(world, request_id),
            60,
            "the final card",
        )
    finally:
        stop(worker)
    assert "checksums match" in final and "2 tables, 3002 rows" in final and "RTO of 4h" in final
    assert table_facts(target) == table_facts(world.source)
    [op] = restore_ops(world)
    assert op["state"] == "finished"
    # Progress went to the card's thread (the relay posts the op's message under the card).
    card_ts = card_of(world, request_id)[0]
    wait_until(
        lambda: any(m.get("thread_ts") == card_ts for m in world.fake.messages.values()),
        20,
        "the restore's messages in the card thread",
    )
    # The restore's own message ends with what it compared and its time against the RTO.
    done = wait_until(
        lambda: [
            m["text"]
            for m in world.fake.messages.values()
            if m.get("thread_ts") == card_ts and "Restore of postgres: done" in m["text"]
        ],
        20,
        "the restore's final message",
    )[0]
    assert "done · 2 tables / 3,002 rows compared · checksums match · " in done
    assert " of the 4h RTO (" in done
    actions = audit_actions(world)
    for action in (
        "restore.request",
        "restore.refuse",
        "role.refusal",
        "restore.approve",
        "restore.execute",
        "restore.finish",
    ):
        assert action in actions, action
    assert audit_of(world.ctx()).verify().ok
    # The HMAC key is configuration only: no value anywhere in Redis holds it.
    assert KEY.encode() not in everything_in(redis_lib.Redis.from_url(redis_url))
    exported = list((world.folder / "store" / "_audit").glob("*.jsonl"))
    assert exported and "restore.finish" in exported[0].read_text()


def test_two_approvers_clicking_at_once_run_the_restore_exactly_once(
    world: World, redis_url: str
) -> None:
    target = world.fresh("race")
    request_id = request_from(slash(world, f"postgres latest --target {target} -- race", "UALICE"))
    barrier = threading.Barrier(12)
    answers: list[int] = []

    def clicker(user: str) -> None:
        barrier.wait()
        answers.append(click(world, request_id, user, "approve").status)

    threads = [threading.Thread(target=clicker, args=(u,)) for u in ["UBOB", "UDAVE"] * 6]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 12
    worker = run_worker(world, "kosmos-default", burst=True)
    try:
        worker.wait(60)
    finally:
        stop(worker)
    request = store_of(world.ctx()).get(request_id)
    assert request.state == RequestState.EXECUTED and len(request.approvers) == 1
    assert len(restore_ops(world)) == 1
    actions = audit_actions(world)
    assert actions.count("restore.approve") == 1 and actions.count("restore.execute") == 1
    assert database_exists(target)


def test_a_denial_needs_a_reason_is_audited_and_the_card_says_so(
    world: World, redis_url: str
) -> None:
    request_id = request_from(
        slash(world, f"postgres latest --target {world.fresh('deny')} -- try me", "UALICE")
    )
    click(world, request_id, "UDAVE", "deny")
    assert any("needs a reason" in text for text in ephemerals(world, "UDAVE"))
    assert "restore_deny" in card_text(world, request_id)
    click(world, request_id, "UDAVE", "deny", reason="wrong backup, use last night's")
    card = card_text(world, request_id)
    assert "Denied by <@UDAVE>: wrong backup, use last night's" in card
    assert "restore_approve" not in card
    click(world, request_id, "UBOB", "approve")  # too late: decided
    assert any("already denied" in text for text in ephemerals(world, "UBOB"))
    [denial] = [r for r in audit_of(world.ctx()).tail(50) if r.action == AuditAction.DENY]
    assert denial.actor == "UDAVE" and denial.details["reason"] == "wrong backup, use last night's"
    assert restore_ops(world) == []


def test_an_expired_request_is_refused_and_its_card_says_it_expired(
    world: World, redis_url: str
) -> None:
    past = world.ctx(shift=-timedelta(minutes=31))
    plan = resolve_plan(past, "postgres", "latest", target=world.fresh("late"))
    request = open_restore_request(past, plan, "UALICE", "too slow", ChatContext(source="slack"))
    client = WebClient(base_url=world.fake.api_url, token="xoxb-kosmos-test")
    posted = client.chat_postMessage(channel=CHANNEL, text="card", blocks=_card_blocks(request.id))
    attach_card(past, request.id, CHANNEL, str(posted["ts"]))
    click(world, request.id, "UBOB", "approve")
    assert store_of(world.ctx()).get(request.id).state == RequestState.EXPIRED
    assert any("expired" in text for text in ephemerals(world, "UBOB"))
    wait_until(lambda: "Expired at" in card_text(world, request.id), 10, "the expired card")
    assert "restore.expire" in audit_actions(world) and restore_ops(world) == []


def _card_blocks(request_id: str) -> list[dict[str, Any]]:
    return [{"type": "context", "elements": [{"type": "mrkdwn", "text": f"`{request_id}`"}]}]


def test_a_plan_tampered_after_approval_is_refused_by_the_worker_and_nothing_is_touched(
    world: World, redis_url: str
) -> None:
    approved_target, other = world.fresh("ok"), world.fresh("evil")
    request_id = request_from(
        slash(world, f"held latest --target {approved_target} -- tamper test", "UALICE")
    )
    click(world, request_id, "UBOB", "approve")
    queue = Queue(
        world.ctx().settings.rq_queue(HELD_QUEUE), connection=redis_lib.Redis.from_url(redis_url)
    )
    [job] = queue.jobs
    payload = job.args[0]
    payload["params"]["options"]["target_database"] = other  # the job now says another target
    job.args = (payload,)
    job.save()
    worker = run_worker(world, HELD_QUEUE, burst=True)
    worker.wait(60)
    op = store_of(world.ctx()).get(request_id)
    assert op.state == RequestState.REFUSED and "does not match" in op.note
    assert not database_exists(other) and not database_exists(approved_target)
    [record] = restore_ops(world)
    assert record["state"] == "failed"
    assert "does not match" in record["last_event"]["message"]
    refusal = [r for r in audit_of(world.ctx()).tail(50) if r.action == AuditAction.REFUSE]
    assert refusal and refusal[-1].actor.startswith("worker@")


def test_jobs_enqueued_by_hand_without_a_valid_approval_are_refused(
    world: World, redis_url: str
) -> None:
    client = redis_lib.Redis.from_url(redis_url)
    queue = Queue(world.ctx().settings.rq_queue(HELD_QUEUE), connection=client)
    targets = [world.fresh("hand"), world.fresh("forged")]
    ops = []
    for target, extra in zip(
        targets,
        [{}, {"approval_id": "ap-0000", "request_id": "rr-20261124T0300Z-abcdef"}],
        strict=True,
    ):
        op_id = new_operation_id(utc_now())
        request = OperationRequest(
            op_id=op_id,
            kind=OperationKind.RESTORE,
            component="held",
            params=RestoreParams(
                backup=components.list_backups(world.ctx(), "held")[0].id,
                options=PostgresRestoreOptions(target_database=target),
                **extra,
            ),
            chat=ChatContext(source="cli"),
            requested_at=utc_now(),
            requested_by="UMALLORY",
        )
        queue.enqueue("workers.jobs.restore.run", request.model_dump(mode="json"), job_id=op_id)
        ops.append(op_id)
    worker = run_worker(world, HELD_QUEUE, burst=True)
    worker.wait(60)
    assert not any(database_exists(t) for t in targets)
    events = [e for _, e in _events(world) if e.op_id in ops and e.type == EventType.FAILED]
    assert {e.op_id for e in events} == set(ops)
    assert "carries no approval" in next(e.message for e in events if e.op_id == ops[0])
    refusals = [r for r in audit_of(world.ctx()).tail(50) if r.action == AuditAction.REFUSE]
    assert len(refusals) == 2 and {r.details["requested_by"] for r in refusals} == {"UMALLORY"}


def _events(world: World) -> list[Any]:
    from workers import queues

    ctx = world.ctx()
    return queues.read_events(ctx.redis, ctx.settings, "0-0", count=10_000)


def test_a_used_approval_is_refused(world: World, redis_url: str) -> None:
    target = world.fresh("once")
    request_id = request_from(slash(world, f"held latest --target {target} -- once", "UALICE"))
    click(world, request_id, "UBOB", "approve")
    queue = Queue(
        world.ctx().settings.rq_queue(HELD_QUEUE), connection=redis_lib.Redis.from_url(redis_url)
    )
    [job] = queue.jobs
    replay = dict(job.args[0], op_id=new_operation_id(utc_now()))
    # The same approved job again under another operation id, queued behind the first.
    queue.enqueue("workers.jobs.restore.run", replay, job_id=replay["op_id"])
    worker = run_worker(world, HELD_QUEUE, burst=True)
    worker.wait(60)
    assert database_exists(target)
    assert [o["state"] for o in restore_ops(world)] == ["finished"]
    assert audit_actions(world).count("restore.execute") == 1
    failed = [e for _, e in _events(world) if e.op_id == replay["op_id"]]
    assert failed and "already used" in (failed[-1].message or "")


def test_break_glass_runs_is_announced_audited_and_nags_until_reviewed(
    world: World, redis_url: str
) -> None:
    target = world.fresh("glass")
    refused = slash(world, f"postgres latest --target {target} --break-glass -- fire", "UALICE")
    assert "may not use restore break-glass" in json.dumps(refused.body)
    [refusal] = [r for r in audit_of(world.ctx()).tail(20) if r.action == AuditAction.ROLE_REFUSAL]
    assert refusal.actor == "UALICE" and refusal.subject == "restore.break-glass"
    answer = slash(world, f"postgres latest --target {target} --break-glass -- db is gone", "UERIN")
    request_id = request_from(answer)
    card = card_text(world, request_id)
    assert "BREAK-GLASS" in card and "<!here>" in card and "Review required" in card
    worker = run_worker(world, "kosmos-default", burst=True)
    worker.wait(60)
    assert table_facts(target) == table_facts(world.source)
    actions = audit_actions(world)
    assert "restore.break-glass" in actions and "restore.execute" in actions

    later = world.ctx(shift=timedelta(hours=1, minutes=1))
    assert [r.id for r in remind_unreviewed(later)] == [request_id]
    assert remind_unreviewed(later) == []  # once per interval, whoever calls
    wait_until(
        lambda: any(
            "not reviewed yet" in json.dumps(c.params.get("blocks"))
            for c in world.fake.calls_to("chat.postMessage")
        ),
        20,
        "the reminder in the channel",
    )
    refused = slash(world, f"review {request_id} -- looks fine", "UERIN")
    assert "no_entry" in json.dumps(refused.body)
    reviewed = slash(world, f"review {request_id} -- justified: primary disk died", "UBOB")
    assert "recorded" in json.dumps(reviewed.body)
    assert remind_unreviewed(world.ctx(shift=timedelta(hours=5))) == []
    assert "Reviewed by <@UBOB>" in card_text(world, request_id)
    assert "restore.review" in audit_actions(world)


def test_audit_verify_names_a_tampered_record(world: World, redis_url: str) -> None:
    request_id = request_from(
        slash(world, f"postgres latest --target {world.fresh('audit')} -- audit me", "UALICE")
    )
    click(world, request_id, "UDAVE", "deny", reason="no")
    verify = subprocess.run(
        ["kosmos-backup", "audit", "verify"],
        env=world.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0 and "intact: 2 records" in verify.stdout
    client = redis_lib.Redis.from_url(redis_url)
    record = json.loads(client.lindex(f"{world.settings.redis.key_prefix}:audit", 1) or b"")
    record["details"]["reason"] = "yes"
    client.lset(f"{world.settings.redis.key_prefix}:audit", 1, json.dumps(record))
    verify = subprocess.run(
        ["kosmos-backup", "audit", "verify"],
        env=world.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 1
    assert "broken at record 2 (seq 2)" in verify.stdout
    shown = post_to_bot(world.bot.url, slash_body("audit 5", user="UVIEW"), SECRET)
    assert "restore.deny" in json.dumps(shown.body)


def test_without_slack_the_cli_requests_and_approves_as_configured_identities(
    world: World, redis_url: str
) -> None:
    target = world.fresh("cli")
    offline = {k: v for k, v in world.env.items() if not k.startswith("SLACK_")}

    def cli(user: str, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**offline, "KOSMOS_USER": user, "KOSMOS_USER_TOKEN": token or TOKENS[user]}
        return subprocess.run(
            ["kosmos-backup", *args], env=env, capture_output=True, text=True, timeout=60
        )

    made = cli(
        "UALICE",
        "restore-request",
        "postgres",
        "latest",
        "--target-database",
        target,
        "--reason",
        "slack is down",
    )
    assert made.returncode == 0, made.stderr
    request_id = REQUEST_ID.search(made.stdout).group(0)  # type: ignore[union-attr]
    own = cli("UALICE", "approve", request_id)
    assert own.returncode == 1 and "cannot approve it" in own.stderr
    approved = cli("UBOB", "approve", request_id)
    assert approved.returncode == 0 and "is queued" in approved.stdout, approved.stderr
    worker = run_worker(world, "kosmos-default", burst=True)
    worker.wait(60)
    assert table_facts(target) == table_facts(world.source)
    [decision] = [r for r in audit_of(world.ctx()).tail(50) if r.action == AuditAction.APPROVE]
    assert decision.actor == "UBOB" and decision.details["via"] == "cli"


def test_approve_wait_follows_the_restore_and_exits_1_when_it_failed(
    world: World, redis_url: str
) -> None:
    target = world.fresh("taken")
    made = _cli(
        world, "UALICE", "restore-request", "postgres", "latest", "--target-database", target,
        "--reason", "approve --wait",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    request_id = REQUEST_ID.search(made.stdout).group(0)  # type: ignore[union-attr]
    create_database(target, "CREATE TABLE taken (x int)")  # someone took the name meanwhile
    worker = run_worker(world, "kosmos-default", burst=False)
    try:
        waited = _cli(world, "UBOB", "approve", request_id, "--wait", "--json")
    finally:
        stop(worker)
    assert waited.returncode == 1, waited.stderr
    assert "Traceback" not in waited.stderr
    outcome = json.loads(waited.stdout.strip().splitlines()[-1])
    assert outcome["kind"] == "restore" and outcome["state"] == "failed"
    assert outcome["op_id"] == store_of(world.ctx()).get(request_id).op_id
    assert target in outcome["error"]["message"]
    assert rows_of(target, "SELECT count(*) FROM taken") == [(0,)]  # left as it was


def _cli(world: World, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``kosmos-backup`` as ``user`` without Slack (a configured CLI identity)."""
    offline = {k: v for k, v in world.env.items() if not k.startswith("SLACK_")}
    env = {**offline, "KOSMOS_USER": user, "KOSMOS_USER_TOKEN": TOKENS[user]}
    return subprocess.run(
        ["kosmos-backup", *args], env=env, capture_output=True, text=True, timeout=120
    )
