"""Connection strings: the password is kept out of argv, messages and manifests."""

from __future__ import annotations

import pytest

from workers.core.errors import ConfigError
from workers.engines.postgres.conninfo import Conninfo


def test_password_is_held_apart_from_what_tools_see() -> None:
    info = Conninfo.parse("host=db.internal port=6432 user=backup password=s3cr3t dbname=app")
    assert "s3cr3t" not in info.tool_dsn()
    assert "s3cr3t" not in info.describe()
    assert "s3cr3t" not in repr(info)
    assert info.tool_env() == {"PGPASSWORD": "s3cr3t"}
    assert "password=s3cr3t" in info.client_dsn()
    assert info.describe() == "backup@db.internal:6432/app"


def test_uri_form_and_dbname_replacement() -> None:
    info = Conninfo.parse("postgresql://backup:p%40ss@10.0.0.5:5433/postgres?sslmode=require")
    other = info.with_dbname("my db")
    assert other.dbname == "my db" and info.dbname == "postgres"
    assert other.tool_env() == {"PGPASSWORD": "p@ss"}
    assert "dbname='my db'" in other.tool_dsn()
    assert "sslmode=require" in other.tool_dsn()
    assert other.same_server(info)


def test_maintenance_database_defaults_to_postgres() -> None:
    assert Conninfo.parse("host=127.0.0.1").maintenance().dbname == "postgres"
    assert Conninfo.parse("host=127.0.0.1 dbname=admin").maintenance().dbname == "admin"


def test_same_server_treats_loopback_names_alike() -> None:
    assert Conninfo.parse("host=localhost").same_server(Conninfo.parse("host=127.0.0.1 port=5432"))
    assert not Conninfo.parse("host=127.0.0.1").same_server(
        Conninfo.parse("host=127.0.0.1 port=5433")
    )


def test_a_malformed_string_is_a_config_error_that_never_repeats_it() -> None:
    with pytest.raises(ConfigError) as caught:
        Conninfo.parse("host=x password='unterminated s3cr3t", setting="--target-dsn")
    assert "--target-dsn" in caught.value.message
    assert "s3cr3t" not in caught.value.one_line()
