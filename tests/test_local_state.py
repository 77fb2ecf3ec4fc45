"""The state directory: where it is, the demo's approval key, and who gets one."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG
from workers.config_loader import load_settings
from workers.local_state import demo_approval_key, state_dir
from workers.restore.requests import approval_key


def test_state_dir_is_overridable_and_follows_xdg(tmp_path: Path) -> None:
    assert state_dir({"HOME": str(tmp_path)}) == tmp_path / ".local/state/kosmos-backup"
    xdg = {"HOME": "/nowhere", "XDG_STATE_HOME": str(tmp_path / "xdg")}
    assert state_dir(xdg) == tmp_path / "xdg" / "kosmos-backup"
    chosen = {**xdg, "KOSMOS_BACKUP_STATE_DIR": str(tmp_path / "mine")}
    assert state_dir(chosen) == tmp_path / "mine"


def test_the_demo_key_is_made_once_private_and_the_same_for_every_racer(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    keys: list[str] = []
    start = threading.Barrier(8)

    def racer() -> None:
        start.wait()
        keys.append(demo_approval_key(folder))

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    key_file = folder / "approval.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert [p.name for p in folder.iterdir()] == ["approval.key"]  # no candidates left behind
    assert demo_approval_key(folder) == keys[0]


def test_the_embedded_defaults_can_approve_and_every_process_gets_the_same_key(
    tmp_path: Path,
) -> None:
    env = {"HOME": str(tmp_path)}
    first, second = load_settings(environ=env), load_settings(environ=env)
    assert first.approval_key is not None and second.approval_key is not None
    assert approval_key(first) == approval_key(second)
    assert first.slack.roles.operators == ("alice",) and first.slack.roles.approvers == ("bob",)
    # A configured key wins; nothing is generated for it.
    mine = "k" * 32
    configured = load_settings(environ={"HOME": str(tmp_path / "b"), "KOSMOS__APPROVAL_KEY": mine})
    assert approval_key(configured) == mine.encode()
    assert not (tmp_path / "b").exists()


def test_a_real_config_without_a_key_still_fails_closed(tmp_path: Path) -> None:
    settings = load_settings(EXAMPLE_CONFIG, environ={"HOME": str(tmp_path)})
    assert settings.approval_key is None
    with pytest.raises(Exception, match="approval_key is not set"):
        approval_key(settings)
    assert not (tmp_path / ".local").exists()
