"""The approval store on the machine's Redis: compare-and-set under real concurrency."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis as redis_lib

from tests.redis_contents import everything_in
from workers.core.approvals import (
    ApprovalRequest,
    RequestState,
    Verdict,
    authorize,
    consume,
    decide,
    open_request,
)
from workers.core.break_glass import open_break_glass, review
from workers.core.errors import ConflictError, NotFoundError, PermissionDenied
from workers.core.restore_plan import RestorePlan
from workers.state.approval_store import ApprovalStore

KEY = b"shared-approval-key"
T0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
TTL = timedelta(minutes=30)
PLAN = RestorePlan(component="postgres", backup_id="postgres-20261124T0200Z-7f3a", target="app_r")


def store_for(url: str) -> ApprovalStore:
    return ApprovalStore(redis_lib.Redis.from_url(url), "kt")


def new_request(store: ApprovalStore, required: int = 1) -> ApprovalRequest:
    request = open_request(
        PLAN, requester="UALICE", reason="drill", now=T0, ttl=TTL, required=required
    )
    return store.create(request)


def click(store: ApprovalStore, request_id: str, user: str) -> tuple[str, str]:
    """One approve click as a front door makes it: (state before, state after)."""
    errors: list[Any] = []

    def step(current: ApprovalRequest) -> ApprovalRequest:
        moved = decide(
            current,
            user=user,
            verdict=Verdict.APPROVE,
            holds_approver_role=True,
            now=T0 + timedelta(minutes=1),
            key=KEY,
            ttl=TTL,
        )
        errors[:] = [moved.error]
        return moved.request

    before, after = store.update(request_id, step)
    return before.state.value, after.state.value


def test_create_get_and_duplicate(redis_url: str) -> None:
    store = store_for(redis_url)
    request = new_request(store)
    assert store.get(request.id) == request
    with pytest.raises(ConflictError):
        store.create(request)
    with pytest.raises(NotFoundError):
        store.get("rr-nope")
    assert [r.id for r in store.recent()] == [request.id]
    assert [r.id for r in store.open_requests()] == [request.id]


def test_the_hmac_key_never_reaches_redis(redis_url: str) -> None:
    store = store_for(redis_url)
    request = new_request(store)
    click(store, request.id, "UBOB")
    dump = everything_in(redis_lib.Redis.from_url(redis_url))
    assert b"signature" in dump and KEY not in dump


def _hammer(url: str, request_id: str, user: str, barrier: Any, results: Any) -> None:
    store = store_for(url)
    barrier.wait()
    before, after = click(store, request_id, user)
    results.put((user, before, after))


def test_concurrent_approvals_in_threads_approve_exactly_once(redis_url: str) -> None:
    store = store_for(redis_url)
    for _ in range(5):
        request = new_request(store)
        barrier = threading.Barrier(16)
        results: list[tuple[str, str]] = []

        def worker(user: str, rid: str, gate: Any, out: list[tuple[str, str]]) -> None:
            own = store_for(redis_url)
            gate.wait()
            out.append(click(own, rid, user))  # list.append is atomic under the GIL

        threads = [
            threading.Thread(target=worker, args=(f"U{n}", request.id, barrier, results))
            for n in range(16)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        moved = [r for r in results if r == ("pending", "approved")]
        assert len(moved) == 1, results
        final = store.get(request.id)
        assert final.state == RequestState.APPROVED and len(final.approvers) == 1


def test_concurrent_approvals_from_processes_approve_exactly_once(redis_url: str) -> None:
    store = store_for(redis_url)
    request = new_request(store)
    spawn = multiprocessing.get_context("forkserver")
    barrier, results = spawn.Barrier(4), spawn.Queue()
    procs = [
        spawn.Process(target=_hammer, args=(redis_url, request.id, f"U{n}", barrier, results))
        for n in range(4)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(30)
    winners = [o for o in outcomes if o[1:] == ("pending", "approved")]
    assert len(winners) == 1, outcomes
    assert store.get(request.id).approvers == [winners[0][0]]


def test_approval_is_consumed_once_by_racing_workers(redis_url: str) -> None:
    store = store_for(redis_url)
    request = new_request(store)
    click(store, request.id, "UBOB")
    wins: list[str] = []
    refusals: list[str] = []
    barrier = threading.Barrier(10)

    def worker(n: int) -> None:
        own = store_for(redis_url)
        barrier.wait()
        try:
            own.update(
                request.id,
                lambda r: consume(
                    (authorize(r, key=KEY, plan=PLAN, now=T0), r)[1], op_id=f"op-{n}", now=T0
                ),
            )
            wins.append(f"op-{n}")
        except PermissionDenied as exc:
            refusals.append(exc.message)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1 and len(refusals) == 9
    assert all("already used" in message for message in refusals)
    final = store.get(request.id)
    assert final.state == RequestState.EXECUTED and final.op_id == wins[0]


def test_expiry_sweep_and_break_glass_stays_open_until_reviewed(redis_url: str) -> None:
    store = store_for(redis_url)
    stale = new_request(store)
    glass = store.create(
        open_break_glass(
            PLAN,
            commander="UERIN",
            holds_commander_role=True,
            reason="outage",
            now=T0,
            ttl=TTL,
            key=KEY,
        )
    )
    assert store.expire_due(T0 + TTL - timedelta(seconds=1)) == []
    expired = store.expire_due(T0 + TTL)
    assert [r.id for r in expired] == [stale.id]
    assert store.expire_due(T0 + TTL) == []
    assert [r.id for r in store.open_requests()] == [glass.id]
    store.update(
        glass.id, lambda r: review(r, user="UBOB", holds_approver_role=True, notes="ok", now=T0)
    )
    assert list(store.open_requests()) == []


def test_operation_link(redis_url: str) -> None:
    store = store_for(redis_url)
    request = new_request(store)
    store.link_operation("op-x", request.id)
    found = store.for_operation("op-x")
    assert found is not None and found.id == request.id
    assert store.for_operation("op-unknown") is None
