"""The status socket's client: which command lines it sends to `up`, and what it does without one.

`up` answering them is tests/scenarios/test_status_from_up.py.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from bot.status_socket import PROTOCOL, address, ask, socket_path, status_request

ENV = {"HOME": "/home/ops", "KOSMOS_BACKUP_STATE_DIR": "/srv/kosmos/state"}


@pytest.mark.parametrize(
    ("argv", "config", "component", "as_json", "check"),
    [
        (["status"], None, None, False, False),
        (["status", "--json"], None, None, True, False),
        (["status", "postgres", "--check", "--json"], None, "postgres", True, True),
        (["--config", "k.yaml", "status"], "/srv/k.yaml", None, False, False),
        (["--config=/etc/k.yaml", "status", "--json"], "/etc/k.yaml", None, True, False),
    ],
)
def test_the_status_command_lines_it_asks_up(
    argv: list[str], config: str | None, component: str | None, as_json: bool, check: bool
) -> None:
    request = status_request(argv, ENV, "/srv")
    assert request is not None
    assert request["protocol"] == PROTOCOL
    assert (request["config"], request["component"]) == (config, component)
    assert (request["json"], request["check"]) == (as_json, check)
    assert request["environ"] == ENV


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--help"],
        ["status", "-h"],
        ["status", "postgres", "minio"],  # the CLI says what is wrong with it
        ["status", "--", "postgres"],
        ["status", "--jsn"],
        ["--version"],
        ["dr", "status"],
        ["--config", "k.yaml", "--bogus", "status"],
        ["list", "postgres"],
    ],
)
def test_anything_else_is_left_to_the_cli(argv: list[str]) -> None:
    assert status_request(argv, ENV, "/srv") is None


def test_the_config_variable_is_read_from_the_caller_s_folder() -> None:
    request = status_request(["status"], ENV | {"KOSMOS_BACKUP_CONFIG": "k.yaml"}, "/srv")
    assert request is not None
    assert request["environ"]["KOSMOS_BACKUP_CONFIG"] == "/srv/k.yaml"


def test_the_socket_is_in_the_install_s_state_directory() -> None:
    assert socket_path(ENV) == Path("/srv/kosmos/state/run/status.sock")


def test_no_answer_from_a_missing_socket_a_stale_one_or_one_that_hangs_up(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["deeper"] * 12) / "status.sock"  # past sun_path's 107 bytes
    deep.parent.mkdir(parents=True)
    request = {"protocol": PROTOCOL}
    assert ask(deep, request) is None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale, address(deep) as where:
        stale.bind(where)
    assert deep.exists() and ask(deep, request) is None
    deep.unlink()
    for reply in (b'{"protocol": 1, "fallback": "another configuration"}', b"not json", b""):
        assert _asked_of(deep, reply) is None, reply
    answer = b'{"protocol": 1, "stdout": "board\\n", "stderr": "", "code": 0}'
    assert _asked_of(deep, answer) == {"protocol": 1, "stdout": "board\n", "stderr": "", "code": 0}


def _asked_of(path: Path, reply: bytes) -> dict[str, object] | None:
    """What ``ask`` makes of a service that reads the request and sends ``reply``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server, address(path) as where:
        server.bind(where)
        server.listen(1)

        def serve() -> None:
            peer, _ = server.accept()
            with peer:
                while peer.recv(1 << 16):
                    pass  # the whole request, up to the client's end of it
                peer.sendall(reply)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            return ask(path, {"protocol": PROTOCOL})
        finally:
            thread.join()
            path.unlink()
