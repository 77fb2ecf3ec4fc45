"""Asking the machine's PostgreSQL who it is, under several spellings and within a budget."""

from __future__ import annotations

import socket
import time

from tests.conftest import PG_DSN
from tests.services import free_port
from workers.core.errors import EngineError
from workers.engines.postgres.conninfo import Conninfo
from workers.engines.postgres.identity import system_ids


def test_every_spelling_of_one_server_gives_one_system_id() -> None:
    spellings = [
        f"{PG_DSN} dbname=postgres",
        "host=127.0.0.1 port=05432 user=postgres dbname=postgres",
        "host=127.0.0.1,localhost user=postgres dbname=postgres",
        "host=localhost user=postgres dbname=postgres",
    ]
    found = system_ids([Conninfo.parse(s) for s in spellings], budget=10)
    assert all(isinstance(f, str) and f.isdigit() for f in found), found
    assert len(set(found)) == 1


def test_a_dead_port_is_an_error_with_libpq_s_reason() -> None:
    port = free_port()
    [found] = system_ids([Conninfo.parse(f"host=127.0.0.1 port={port} user=postgres")], 10)
    assert isinstance(found, EngineError)
    assert f"cannot connect to postgres@127.0.0.1:{port}/" in found.message
    assert "Connection refused" in found.message


def test_a_server_that_never_answers_is_given_up_on_within_the_budget() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel accepts the connection; nobody ever speaks
        port = silent.getsockname()[1]
        started = time.monotonic()
        live, mute = system_ids(
            [
                Conninfo.parse(f"{PG_DSN} dbname=postgres"),
                Conninfo.parse(f"host=127.0.0.1 port={port} user=postgres"),
            ],
            budget=0.5,
        )
        assert time.monotonic() - started < 1.5
    assert isinstance(live, str)
    assert isinstance(mute, EngineError) and "no answer within 0.5s" in mute.message
