"""A run's scratch instances (a data directory and the postgres running on it), against real
initdb/pg_ctl, Redis and a storage directory: claimed before they are made, wiped when a retry
finds an earlier attempt's, stopped and deleted by the teardown, which may run twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from tests.pgcluster import PgCluster, scratch_dir
from workers.context import Context
from workers.core.config import Settings
from workers.core.ports import no_progress
from workers.core.run_start import new_run
from workers.core.runbook import Runbook
from workers.core.runbook_run import RunState
from workers.runbooks import flow as runbook_flow
from workers.runbooks.resources import Ledger, claim_instance, teardown

RUNBOOK = {
    "name": "pitr-drill",
    "title": "PITR drill",
    "steps": [
        {"id": "restore", "title": "Restore", "kind": "job", "operation": "postgres.restore-pitr"},
        {
            "id": "teardown",
            "title": "Tear down",
            "kind": "job",
            "operation": "run.teardown",
            "depends_on": ["restore"],
            "always": True,
        },
    ],
}


@pytest.fixture
def ctx(make_settings: Callable[..., Settings], redis_url: str) -> Context:
    return Context(make_settings(**{"redis.url": redis_url}))


@pytest.fixture
def cluster() -> Iterator[PgCluster]:
    made = PgCluster(scratch_dir("claimed"))
    try:
        yield made
    finally:
        made.remove()


def a_run(ctx: Context) -> RunState:
    run = new_run(
        Runbook.model_validate(RUNBOOK),
        run_id="dr-20261124T030000Z-ab12",
        params={},
        started_by="U1",
        now=ctx.clock(),
        rto=timedelta(hours=4),
        rpo=timedelta(hours=1),
        modes={},
        safe={},
    )
    return runbook_flow.runs(ctx).create(run)  # type: ignore[no-any-return]


def current(ctx: Context, run_id: str) -> RunState:
    return runbook_flow.runs(ctx).load(run_id)  # type: ignore[no-any-return]


def test_a_retry_wipes_its_earlier_instance_and_the_teardown_removes_it(
    ctx: Context, cluster: PgCluster
) -> None:
    run = a_run(ctx)
    data_dir = str(cluster.data_dir)
    first = Ledger(ctx, run, "restore")
    assert claim_instance(first, "postgres", data_dir, cluster.port, no_progress) is not None
    # Claimed before it exists, in Redis and in the storage.
    assert [r.name for r in runbook_flow.runs(ctx).load_stored(run.run_id).resources] == [data_dir]
    cluster.init().start()  # what the first attempt made before it was lost
    retry = Ledger(ctx, current(ctx, run.run_id), "restore")
    assert claim_instance(retry, "postgres", data_dir, cluster.port, no_progress) is not None
    assert not cluster.data_dir.exists() and not cluster.instance.running()
    cluster.init().start()  # the retry's own
    assert cluster.execute("SELECT 1") == [(1,)]
    done = teardown(ctx, current(ctx, run.run_id), "teardown")
    assert done == {"dropped": [], "removed": [data_dir]}
    assert not cluster.data_dir.exists() and not cluster.instance.running()
    # Again: nothing outstanding, nothing to do, no error.
    assert teardown(ctx, current(ctx, run.run_id), "teardown") == {"dropped": []}
    assert all(r.removed for r in current(ctx, run.run_id).resources)


def test_a_data_directory_the_run_did_not_make_is_never_claimed(
    ctx: Context, cluster: PgCluster
) -> None:
    cluster.init()
    run = a_run(ctx)
    ledger = Ledger(ctx, run, "restore")
    assert claim_instance(ledger, "postgres", str(cluster.data_dir), None, no_progress) is None
    assert current(ctx, run.run_id).resources == []
    assert teardown(ctx, current(ctx, run.run_id), "teardown") == {"dropped": []}
    assert (cluster.data_dir / "PG_VERSION").exists()
