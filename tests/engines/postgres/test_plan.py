"""Which dump goes where: restore targets chosen from the options, refusing ambiguity."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workers.core.errors import ConfigError, UsageError
from workers.core.manifest import Manifest, ObjectEntry
from workers.engines.postgres.conninfo import Conninfo
from workers.engines.postgres.restoration import plan

SOURCE = Conninfo.parse("host=10.0.0.5 user=postgres dbname=postgres password=pw")


def manifest(*databases: str) -> Manifest:
    at = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    entries = [
        ObjectEntry(name=f"{db}.dump.zst", size=1, sha256="0" * 64, meta={"database": db})
        for db in databases
    ]
    entries.append(ObjectEntry(name="globals.sql.zst", size=1, sha256="1" * 64))
    return Manifest(
        id="postgres-20261124T0300Z-7f3a",
        component="postgres",
        kind="postgres-logical",
        started_at=at,
        finished_at=at,
        objects=tuple(entries),
        source={"databases": list(databases)},
    )


def test_a_target_is_required() -> None:
    with pytest.raises(UsageError, match="say where to restore"):
        plan(manifest("app"), SOURCE, target_database=None, target_dsn=None, database=None)


def test_one_database_goes_to_the_named_target_on_the_source_server() -> None:
    [placement] = plan(
        manifest("app"), SOURCE, target_database="app_copy", target_dsn=None, database=None
    )
    assert (placement.source_database, placement.database) == ("app", "app_copy")
    assert placement.server.same_server(SOURCE) and placement.server.password == "pw"
    assert placement.maintenance().dbname == "postgres"


def test_several_databases_need_a_choice_for_one_target() -> None:
    two = manifest("app", "billing")
    with pytest.raises(UsageError, match="holds 2 databases") as caught:
        plan(two, SOURCE, target_database="x", target_dsn=None, database=None)
    assert "app, billing" in caught.value.hint
    with pytest.raises(UsageError, match="no dump of database 'nope'"):
        plan(two, SOURCE, target_database="x", target_dsn=None, database="nope")
    [chosen] = plan(two, SOURCE, target_database="x", target_dsn=None, database="billing")
    assert chosen.dump.name == "billing.dump.zst"


def test_a_new_instance_without_dbname_gets_every_database_under_its_own_name() -> None:
    placements = plan(
        manifest("app", "billing"),
        SOURCE,
        target_database=None,
        target_dsn="host=10.0.0.9 port=5433 user=postgres",
        database=None,
    )
    assert [(p.source_database, p.database) for p in placements] == [
        ("app", "app"),
        ("billing", "billing"),
    ]
    assert all(p.server.host == "10.0.0.9" and p.server.password is None for p in placements)
    assert placements[0].maintenance().dbname == "postgres"


def test_a_dbname_in_the_target_dsn_is_the_target_database() -> None:
    [placement] = plan(
        manifest("app"),
        SOURCE,
        target_database=None,
        target_dsn="host=10.0.0.9 dbname=restored",
        database=None,
    )
    assert placement.database == "restored"
    assert placement.maintenance().dbname == "postgres"


def test_a_malformed_target_dsn_names_the_option() -> None:
    with pytest.raises(ConfigError, match="--target-dsn"):
        plan(manifest("app"), SOURCE, target_database=None, target_dsn="host='x", database=None)
