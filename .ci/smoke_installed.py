"""Smoke test of a non-editable install: run as ``VENV/bin/python -I .ci/smoke_installed.py REPO``.

``-I`` keeps the source tree off ``sys.path``, so everything below runs the code that the wheel
installed, as the Docker image and a plain ``pip install .`` would. Only the example config and
the fake Slack Web API (a stdlib-only module) are read from the repository.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import types
import urllib.request
from collections.abc import Iterator
from pathlib import Path

SECRET = "smoke-signing-secret-0123456789abcdef"


def fail(message: str) -> None:
    print(f"smoke: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def ok(message: str) -> None:
    print(f"smoke: ok: {message}")


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).parent / "kosmos-backup")
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=120)


def expect(result: subprocess.CompletedProcess[str], what: str, *needles: str) -> None:
    out = result.stdout + result.stderr
    if result.returncode != 0:
        fail(f"{what} exited {result.returncode}:\n{out}")
    for needle in needles:
        if needle not in out:
            fail(f"{what}: {needle!r} not in its output:\n{out}")
    ok(what)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f"process exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.1)
    fail(f"{url} did not answer; log:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def check_installed_code() -> None:
    import bot
    import workers

    for package in (bot, workers):
        where = Path(package.__file__ or "").resolve()
        if not where.is_relative_to(Path(sys.prefix).resolve()):
            fail(f"{package.__name__} imported from {where}, not from the install at {sys.prefix}")
    ok(f"bot and workers come from {sys.prefix}")


def main(repo: Path) -> None:
    check_installed_code()
    work = Path(tempfile.mkdtemp(prefix="kosmos-smoke-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
    base.update({"HOME": str(work), "PYTHONUNBUFFERED": "1"})
    try:
        version = importlib.metadata.version("kosmos-backup")
        expect(cli("--version", env=base), "--version", version)
        example = str(repo / "examples" / "kosmos-backup.yaml")
        expect(cli("--config", example, "config", "check", env=base), "config check on the example")
        expect(
            cli("runbook", "check", env=base),
            "runbook check finds the shipped runbooks",
            "dr-test",
            "postgres-restore",
            "full-recovery",
        )
        serve(repo, work, base, example)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_by_path(name: str, path: Path) -> types.ModuleType:
    """Import ``path`` as module ``name`` (registered first: dataclasses look it up)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def serve(repo: Path, work: Path, base: dict[str, str], example: str) -> None:
    """A private Redis, the fake Slack, the bot under gunicorn: a signed /backup status."""
    # The fake waits with the tests' one wait_until; -I keeps tests/ off sys.path, so its
    # module is loaded by path under the name the fake imports.
    package = types.ModuleType("tests")
    package.__path__ = []
    sys.modules["tests"] = package
    load_by_path("tests.sync", repo / "tests/sync.py")
    fakes = load_by_path("fake_slack", repo / "tests/fakes/slack.py")
    redis_port, bot_port = free_port(), free_port()
    redis_argv = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1"]
    redis_argv += ["--save", "", "--appendonly", "no", "--dir", str(work)]
    slack = fakes.FakeSlack(usergroups={"platform": ["UVIEW"], "sre": ["UOPS"]}).start()
    env = {
        **base,
        "KOSMOS_BACKUP_CONFIG": example,
        "SLACK_BOT_TOKEN": "xoxb-smoke",
        "SLACK_SIGNING_SECRET": SECRET,
        "KOSMOS__SLACK__API_URL": slack.api_url,
        "KOSMOS__REDIS__URL": f"redis://127.0.0.1:{redis_port}/0",
        "KOSMOS__STORAGE__URL": f"file://{work}/store",
    }
    exe = str(Path(sys.executable).parent / "kosmos-backup")
    bot_argv = [exe, "bot", "--http", "--host", "127.0.0.1", "--port", str(bot_port)]
    try:
        with (
            process(redis_argv, base, work / "redis.log"),
            process(bot_argv + ["--workers", "1"], env, work / "bot.log") as bot,
        ):
            wait_http(f"http://127.0.0.1:{bot_port}/healthz", bot, work / "bot.log")
            body = fakes.slash_body("status", user="UVIEW")
            url = f"http://127.0.0.1:{bot_port}/slack/events"
            answer = fakes.post_to_bot(url, body, SECRET)
            blocks = json.dumps(answer.body)
            if answer.status != 200 or "Backups" not in blocks or "postgres" not in blocks:
                fail(f"signed /backup status answered {answer.status}: {blocks[:500]}")
            ok("bot --http answers a signed /backup status")
            # One machine, one operator: its console is trusted to say who starts the drill.
            trusted = {**env, "KOSMOS__APPROVALS__TRUST_LOCAL_CONSOLE": "true"}
            started = cli("dr", "start", "dr-test", "--as", "UOPS", env=trusted)
            expect(started, "dr start dr-test finds its runbook")
    finally:
        slack.stop()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: VENV/bin/python -I .ci/smoke_installed.py REPO")
    main(Path(sys.argv[1]).resolve())
