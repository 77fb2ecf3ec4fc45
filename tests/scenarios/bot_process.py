"""Real processes for the Slack scenarios: the bot in HTTP mode (gunicorn) and RQ workers."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import EXAMPLE_CONFIG
from tests.services import free_port, wait_for_port

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-kosmos-test"


def bot_env(api_url: str, redis_url: str, store: Path, **extra: str) -> dict[str, str]:
    """The environment of a bot or worker process for one scenario."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOSMOS", "SLACK_"))}
    env.update(
        {
            "KOSMOS_BACKUP_CONFIG": str(EXAMPLE_CONFIG),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "KOSMOS__SLACK__API_URL": api_url,
            "KOSMOS__REDIS__URL": redis_url,
            "KOSMOS__STORAGE__URL": f"file://{store}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class BotProcess:
    """``kosmos-backup bot --http`` on a free loopback port."""

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        threads: int = 16,
        metrics: bool = False,
        workers: int = 2,
    ) -> None:
        self.env = env
        self.log = log
        self.threads = threads
        self.workers = workers
        self.port = free_port()
        self.metrics_port = free_port() if metrics else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where Slack would POST."""
        return f"http://127.0.0.1:{self.port}/slack/events"

    def start(self) -> BotProcess:
        """Start and wait until /healthz answers."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    "kosmos-backup",
                    "bot",
                    "--http",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--threads",
                    str(self.threads),
                    "--workers",
                    str(self.workers),
                    *(["--metrics-port", str(self.metrics_port)] if self.metrics_port else []),
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, timeout=30, proc=self.proc)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                health = f"http://127.0.0.1:{self.port}/healthz"
                with urllib.request.urlopen(health, timeout=2) as answer:
                    if answer.status == 200:
                        return self
            time.sleep(0.05)
        raise TimeoutError(f"bot did not become healthy; see {self.log}")

    def stop(self) -> None:
        """Terminate (gunicorn shuts down gracefully on SIGTERM)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def running_bot(env: dict[str, str], log: Path, metrics: bool = False) -> Iterator[BotProcess]:
    """A bot process for the duration of the block."""
    bot = BotProcess(env, log, metrics=metrics).start()
    try:
        yield bot
    finally:
        bot.stop()


@contextlib.contextmanager
def running_worker(
    env: dict[str, str], log: Path, queues: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``kosmos-backup worker`` on ``queues`` for the duration of the block."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["kosmos-backup", "worker", "--queues", queues],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
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
