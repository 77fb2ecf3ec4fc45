"""A throwaway etcd on free loopback ports, started on a restored data dir and compared."""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workers import process
from workers.core.errors import EngineError
from workers.engines.etcd import etcdctl
from workers.engines.etcd.snapshot import KeyFacts, SampledKey, compare, parse_range

ETCD = "etcd"
MEMBER = "scratch"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ScratchEtcd:
    """One etcd member serving a restored data dir on loopback, plain HTTP, until stopped."""

    def __init__(self, data_dir: Path, peer_port: int) -> None:
        self.data_dir = data_dir
        self.client_port = free_port()
        self.peer_port = peer_port
        self.log = data_dir.parent / f"{data_dir.name}.log"
        self.proc: Any = None

    @property
    def url(self) -> str:
        """Its client URL."""
        return f"http://127.0.0.1:{self.client_port}"

    def start(self) -> ScratchEtcd:
        """Start it and wait until it answers; EngineError with its log's tail if it does not."""
        peer = f"http://127.0.0.1:{self.peer_port}"
        with self.log.open("ab") as log:
            self.proc = process.spawn(
                [
                    *(ETCD, f"--name={MEMBER}", f"--data-dir={self.data_dir}"),
                    *(f"--listen-client-urls={self.url}", f"--advertise-client-urls={self.url}"),
                    *(f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}"),
                    f"--initial-cluster={MEMBER}={peer}",
                ],
                log=log,
            )
        client = self.client()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineError("the scratch etcd exited at start", hint=self.log_tail())
            with contextlib.suppress(EngineError):
                client.reachable()
                return self
            time.sleep(0.2)
        raise EngineError(f"the scratch etcd did not answer in {START_TIMEOUT:.0f}s")

    def client(self) -> etcdctl.Client:
        """An etcdctl client for it."""
        return etcdctl.Client((self.url,), dial_timeout=1.0, command_timeout=30.0)

    def stop(self) -> None:
        """Stop it (and wait for it)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def log_tail(self, lines: int = 10) -> str:
        """The last lines of its log, for messages."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


@contextlib.contextmanager
def serving(snapshot: Path, workdir: Path | None = None) -> Iterator[ScratchEtcd]:
    """Restore ``snapshot`` into a scratch data dir and serve it; all removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="kosmos-etcd-scratch-", dir=workdir))
    peer_port = free_port()
    try:
        etcdctl.restore(
            snapshot, root / "data", member=MEMBER, peer_url=f"http://127.0.0.1:{peer_port}"
        )
        server = ScratchEtcd(root / "data", peer_port)
        try:
            yield server.start()
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def compare_with(server: ScratchEtcd, expected: KeyFacts) -> tuple[int, list[str]]:
    """(keys the scratch etcd holds, what differs from ``expected``) at its current revision."""
    client = server.client()
    endpoint, status = client.reachable()
    revision = int(status["header"]["revision"])
    found = client.key_facts(endpoint, revision)
    if found is None:
        raise EngineError("the scratch etcd compacted its own revision while being read")
    by_key: dict[str, SampledKey] = {k.key: k for k in found.sample}
    missing = [k for k in expected.sample if k.key not in by_key]
    for key in missing:
        by_key |= _lookup(client, endpoint, key.key)
    return found.count, compare(expected, found.count, by_key)


def _lookup(client: etcdctl.Client, endpoint: str, key: str) -> dict[str, SampledKey]:
    done = process.run(
        client.argv("get", key, "--keys-only", "-w", "json", endpoints=[endpoint]),
        env=etcdctl.ENV,
        timeout=60,
    )
    _, keys = parse_range(done.stdout)
    return {k.key: k for k in keys}
