"""Handlers against the machine's Redis: parse, authorize, enqueue once, answer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis as redis_lib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq import Queue

from bot.handlers import Caller, Desk, dispatch
from bot.replies.backup import AcceptedReply, HelpReply, ListReply, StatusReply
from bot.roles import Authorizer, SelfNamedGroups
from workers.context import Context
from workers.core.config import Settings
from workers.core.errors import PermissionDenied, StorageUnavailable, UsageError
from workers.core.events import ChatContext
from workers.queues import all_queues, read_events

OPERATOR = "@sre"  # the console's offline resolver: a group's pseudo-member is the handle
VIEWER = "@platform"


@pytest.fixture
def desk(make_settings: Callable[..., Settings], redis_url: str) -> Iterator[Desk]:
    settings = make_settings(**{"redis.url": redis_url})
    ctx = Context(settings)
    yield Desk(ctx, Authorizer(settings.slack.roles, SelfNamedGroups()))
    ctx.redis.close()


def caller(user: str, key: str | None = None) -> Caller:
    return Caller(user, ChatContext(source="slack", channel="COPS", user=user), request_key=key)


def jobs(desk: Desk) -> int:
    return sum(
        Queue(desk.ctx.settings.rq_queue(name), connection=desk.ctx.redis).count
        for name in all_queues(desk.ctx.settings)
    )


def test_viewer_sees_the_status_board_of_every_component(desk: Desk) -> None:
    reply = dispatch(desk, caller(VIEWER), "/backup", "status")
    assert isinstance(reply, StatusReply)
    assert [row.name for row in reply.rows] == [
        "postgres",
        "minio",
        "etcd",
        "kubernetes",
        "secrets",
    ]
    assert reply.objectives.rpo.total_seconds() == 3600
    assert jobs(desk) == 0


def test_list_and_help_answer_without_a_job(desk: Desk) -> None:
    listed = dispatch(desk, caller(VIEWER), "/backup", "list etcd --limit 2")
    assert isinstance(listed, ListReply) and listed.component == "etcd" and listed.total == 0
    helped = dispatch(desk, caller(VIEWER), "/backup", "help")
    assert isinstance(helped, HelpReply)
    assert [usage for usage, _ in helped.lines][1] == "/backup run <component> [--base]"
    assert jobs(desk) == 0


def test_operator_run_enqueues_one_job_and_emits_accepted(desk: Desk) -> None:
    reply = dispatch(desk, caller(OPERATOR), "/backup", "run postgres")
    assert isinstance(reply, AcceptedReply) and not reply.repeated
    queue = Queue(desk.ctx.settings.rq_queue("kosmos-default"), connection=desk.ctx.redis)
    assert queue.job_ids == [reply.op_id]
    events = read_events(desk.ctx.redis, desk.ctx.settings)
    assert [(e.op_id, e.type.value, e.chat.channel) for _, e in events] == [
        (reply.op_id, "accepted", "COPS")
    ]


def seed(desk: Desk, component: str) -> str:
    """Commit one small backup of ``component`` to the desk's store; its id."""
    with desk.ctx.repo.begin(component, f"{component}-test") as writer:
        writer.write("data", [b"payload"], compress=False, encrypt=False)
        return writer.commit(source={}).id


def test_a_retried_request_is_answered_with_the_same_operation_and_no_second_job(
    desk: Desk,
) -> None:
    seed(desk, "etcd")
    first = dispatch(desk, caller(OPERATOR, key="trigger-1"), "/backup", "verify etcd")
    again = dispatch(desk, caller(OPERATOR, key="trigger-1"), "/backup", "verify etcd")
    assert isinstance(first, AcceptedReply) and isinstance(again, AcceptedReply)
    assert again.op_id == first.op_id and again.repeated
    assert jobs(desk) == 1
    job = Queue(desk.ctx.settings.rq_queue("kosmos-etcd"), connection=desk.ctx.redis).jobs[0]
    assert job.args[0]["params"] == {"backup": "latest", "deep": False}


def test_verify_carries_the_backup_named_and_refuses_one_that_does_not_exist(
    desk: Desk,
) -> None:
    older, newer = seed(desk, "postgres"), seed(desk, "postgres")
    reply = dispatch(desk, caller(OPERATOR), "/backup", f"verify postgres {older} --deep")
    assert isinstance(reply, AcceptedReply)
    [job] = Queue(desk.ctx.settings.rq_queue("kosmos-default"), connection=desk.ctx.redis).jobs
    assert job.args[0]["params"] == {"backup": older, "deep": True} and older != newer
    missing = "postgres-20200101T0000Z-beef"
    for text in (f"verify postgres {missing}", "verify minio", "verify minio latest --deep"):
        with pytest.raises(UsageError) as refused:
            dispatch(desk, caller(OPERATOR, key=f"k-{text}"), "/backup", text)
        component = text.split()[1]
        assert refused.value.message.startswith(f"{component}: no ")
        assert refused.value.hint == f"see: /backup list {component}"
    assert jobs(desk) == 1 and len(read_events(desk.ctx.redis, desk.ctx.settings)) == 1


def test_a_refused_submission_releases_its_request_key(desk: Desk) -> None:
    with pytest.raises(UsageError, match="only postgres has base backups"):
        dispatch(desk, caller(OPERATOR, key="trigger-2"), "/backup", "run minio --base")
    assert desk.ctx.redis.get(f"{desk.ctx.settings.redis.key_prefix}:bot:request:trigger-2") is None
    assert jobs(desk) == 0


@pytest.mark.parametrize(("user", "text"), [(VIEWER, "run postgres"), ("U0STRANGER", "status")])
def test_refusals_name_the_role_needed_and_enqueue_nothing(
    desk: Desk, user: str, text: str
) -> None:
    with pytest.raises(PermissionDenied) as caught:
        dispatch(desk, caller(user), "/backup", text)
    assert "role" in caught.value.message and "slack.roles." in caught.value.hint
    assert jobs(desk) == 0
    assert read_events(desk.ctx.redis, desk.ctx.settings) == []


def test_a_slow_catalog_read_is_cut_off_at_the_deadline(desk: Desk) -> None:
    desk.read_timeout = 0.2
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="did not answer within"):
        desk.read(time.sleep, 2.0)
    assert time.monotonic() - started < 1.0


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.one_of(st.text(max_size=80), st.from_regex(r"(run|verify|list|status) ?[a-z -]{0,20}"))
)
def test_any_text_after_backup_answers_or_explains_and_only_run_or_verify_enqueue(
    desk: Desk, text: str
) -> None:
    client: redis_lib.Redis = desk.ctx.redis
    client.flushdb()
    try:
        reply = dispatch(desk, caller(OPERATOR), "/backup", text)
    except UsageError as exc:
        assert exc.message
        assert jobs(desk) == 0 and client.xlen(f"{desk.ctx.settings.redis.key_prefix}:events") == 0
        return
    enqueued = jobs(desk)
    assert enqueued == (1 if isinstance(reply, AcceptedReply) else 0)
