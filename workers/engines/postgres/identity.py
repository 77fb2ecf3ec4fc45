"""Asking PostgreSQL servers who they are (their system identifier) within a time budget."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace

from workers.core.errors import EngineError, KosmosError
from workers.core.target_identity import Found
from workers.engines.postgres import queries
from workers.engines.postgres.conninfo import Conninfo


def system_ids(servers: Sequence[Conninfo], budget: float) -> list[Found]:
    """Each server's system identifier, or the error that kept it from answering in time.

    The servers are asked at once; one that has not answered within ``budget`` seconds
    counts as unreachable, so a firewalled host cannot hold up a chat answer.
    """
    pool = ThreadPoolExecutor(max_workers=max(1, len(servers)))
    try:
        asked = [pool.submit(_ask, _bounded(server, budget)) for server in servers]
        wait(asked, timeout=budget)
        return [
            _found(future, server, budget) for future, server in zip(asked, servers, strict=True)
        ]
    finally:
        # A straggler ends on its own connect_timeout; nobody waits for it.
        pool.shutdown(wait=False, cancel_futures=True)


def _bounded(server: Conninfo, budget: float) -> Conninfo:
    # libpq's shortest connect_timeout is 2 s; past the budget its answer is not wanted.
    seconds = str(max(2, math.ceil(budget)))
    return replace(server, params={**server.params, "connect_timeout": seconds})


def _ask(server: Conninfo) -> str:
    with contextlib.closing(queries.connect(server)) as conn:
        return queries.system_identifier(conn)


def _found(future: Future[str], server: Conninfo, budget: float) -> Found:
    if not future.done():
        return EngineError(f"cannot connect to {server.describe()}: no answer within {budget:g}s")
    try:
        return future.result()
    except KosmosError as exc:
        return exc
