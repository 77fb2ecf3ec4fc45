"""PostgreSQL's contract-test fixture: a small database on the machine's PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import PG_DSN
from tests.engines.case import ContractCase
from tests.pgsample import create_database, databases, rows_of
from tests.storage.backups import Clock
from workers.context import Context
from workers.core.config import Settings
from workers.core.operations import PostgresRestoreOptions

SCRIPT = """
CREATE TABLE accounts (id int PRIMARY KEY, name text, balance numeric(12, 2));
INSERT INTO accounts SELECT g, 'name ' || g, g * 1.25 FROM generate_series(1, 500) AS g;
CREATE TABLE events (t int, kind text);
INSERT INTO events VALUES (1, 'login'), (1, 'login'), (NULL, NULL);
"""
QUERIES = ("SELECT * FROM accounts ORDER BY id", "SELECT * FROM events ORDER BY t, kind")


@pytest.fixture
def postgres_contract_case(make_settings: Callable[..., Settings]) -> Iterator[ContractCase]:
    """A database with two tables, dumped to a local store; restores go to a new database."""
    with databases() as fresh:
        source, target = fresh("contract_src"), fresh("contract_dst")
        create_database(source, SCRIPT)
        settings = make_settings(
            **{
                "components.postgres.dsn": f"{PG_DSN} dbname=postgres",
                "components.postgres.databases": f"[{source}]",
                "components.postgres.keep_last": "1",
                "components.postgres.continuous": "false",
            }
        )
        clock = Clock()

        def check_restored(result: Any) -> None:
            assert result.checksums_matched is True
            assert [d.database for d in result.databases] == [target]
            for query in QUERIES:
                assert rows_of(target, query) == rows_of(source, query)

        yield ContractCase(
            ctx=Context(settings, clock=clock),
            clock=clock,
            component="postgres",
            restore_options=PostgresRestoreOptions(target_database=target, database=source),
            check_restored=check_restored,
        )
