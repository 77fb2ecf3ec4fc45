"""etcdctl against a live etcd and against snapshot files, through the one process runner."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers import process
from workers.core.config import EtcdComponent
from workers.core.errors import EngineError, IntegrityError, UsageError
from workers.engines.etcd.snapshot import (
    HEADER,
    SAMPLE_SIZE,
    TRAILER,
    KeyFacts,
    SnapshotStatus,
    merge_sample,
    parse_range,
    parse_status,
    status_failure,
    trailer_expected,
)

ETCDCTL = "etcdctl"
ENV = {"ETCDCTL_API": "3"}
SAVE_TIMEOUT = 1800.0
"""A snapshot save has no deadline of its own: a hung endpoint would hold the job forever."""
PROBE_TIMEOUT = 4.0
COMPACTED = "required revision has been compacted"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Client:
    """How to reach one etcd cluster: endpoints and the TLS files of its client."""

    endpoints: tuple[str, ...]
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    dial_timeout: float = 3.0
    command_timeout: float = 15.0

    @classmethod
    def of(cls, settings: EtcdComponent) -> Client:
        """The client the component's settings describe."""
        return cls(settings.endpoints, settings.cacert, settings.cert, settings.key)

    def argv(
        self, *args: str, endpoints: Sequence[str] | None = None, timeout: float | None = None
    ) -> list[str]:
        """``etcdctl`` with endpoints, TLS files and timeouts, then ``args``."""
        argv = [
            ETCDCTL,
            f"--endpoints={','.join(endpoints or self.endpoints)}",
            f"--dial-timeout={self.dial_timeout:g}s",
            f"--command-timeout={timeout or self.command_timeout:g}s",
        ]
        for flag, value in (("cacert", self.cacert), ("cert", self.cert), ("key", self.key)):
            if value:
                argv.append(f"--{flag}={value}")
        return [*argv, *args]

    def reachable(self) -> tuple[str, dict[str, Any]]:
        """The first endpoint that answers, with its status; EngineError naming all if none."""
        reasons = []
        for endpoint in self.endpoints:
            done = process.run(
                # A status answers at once; a refused connection is retried until the timeout.
                self.argv(
                    "endpoint", "status", "-w", "json", endpoints=[endpoint], timeout=PROBE_TIMEOUT
                ),
                env=ENV,
                timeout=self.dial_timeout + PROBE_TIMEOUT + 5,
                check=False,
            )
            if done.returncode == 0:
                status = json.loads(done.stdout)[0]["Status"]
                return endpoint, dict(status)
            reasons.append(f"{endpoint}: {_reason(done.stderr_tail)}")
        raise EngineError(
            f"etcd is unreachable: {'; '.join(reasons)}",
            hint="check components.<name>.endpoints and the TLS files (cacert, cert, key)",
        )

    def save(self, endpoint: str, path: Path) -> None:
        """``etcdctl snapshot save`` from one endpoint into ``path``."""
        process.run(
            self.argv("snapshot", "save", str(path), endpoints=[endpoint]),
            env=ENV,
            timeout=SAVE_TIMEOUT,
        )

    def key_facts(self, endpoint: str, revision: int) -> KeyFacts | None:
        """The live key count at ``revision`` and keys from both ends; None once compacted."""
        ends = []
        for order in ("ASCEND", "DESCEND"):
            done = process.run(
                self.argv(
                    *("get", "", "--prefix", "--keys-only", f"--limit={SAMPLE_SIZE}"),
                    *(f"--rev={revision}", f"--order={order}", "--sort-by=KEY", "-w", "json"),
                    endpoints=[endpoint],
                ),
                env=ENV,
                timeout=self.dial_timeout + self.command_timeout + 5,
                check=False,
            )
            if done.returncode != 0 and COMPACTED in done.stderr_tail:
                return None
            if done.returncode != 0:
                raise EngineError(f"etcdctl get failed: {_reason(done.stderr_tail)}")
            ends.append(parse_range(done.stdout))
        (count, first), (_, last) = ends
        return KeyFacts(count=count, sample=merge_sample(first, last))


def version() -> str:
    """etcdctl's own version (``3.4.23``)."""
    out = process.run([ETCDCTL, "version"], env=ENV, timeout=30).stdout.decode()
    first = out.splitlines()[0] if out else ""
    return first.rpartition(":")[2].strip() or "unknown"


def check_file(path: Path, name: str) -> None:
    """The file's shape, and its sha256 trailer when it has one; IntegrityError otherwise."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if not trailer_expected(handle.read(HEADER), size, name):
            return  # copied from a data dir, not taken through the API: no trailer to check
        handle.seek(0)
        digest = hashlib.sha256()
        left = size - TRAILER
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            digest.update(chunk)
            left -= len(chunk)
        if handle.read(TRAILER) != digest.digest():
            raise IntegrityError(
                f"snapshot {name} is damaged: its own sha256 trailer does not match",
                hint="verify an older backup, or take a new snapshot",
            )


def status(path: Path, name: str) -> SnapshotStatus:
    """Check the file, then what ``etcdctl snapshot status`` says of it."""
    check_file(path, name)
    done = process.run(
        [ETCDCTL, "snapshot", "status", str(path), "-w", "json"],
        env=ENV,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise status_failure(name, done.stderr_tail, done.returncode)
    return parse_status(done.stdout)


def restore(path: Path, data_dir: Path, *, member: str, peer_url: str) -> None:
    """``etcdctl snapshot restore`` into a NEW data dir (never over an existing one)."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise UsageError(
            f"{data_dir} is not empty: a restore never writes over a data directory",
            hint="name a new --data-dir; the live one stays as it is",
        )
    if data_dir.exists():
        data_dir.rmdir()  # etcdctl refuses an existing directory, even an empty one
    process.run(
        [
            *(ETCDCTL, "snapshot", "restore", str(path), f"--data-dir={data_dir}"),
            *(f"--name={member}", f"--initial-cluster={member}={peer_url}"),
            f"--initial-advertise-peer-urls={peer_url}",
        ],
        env=ENV,
        timeout=1800,
    )


def file_chunks(path: Path) -> Iterator[bytes]:
    """A local file as a stream of chunks."""
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _reason(stderr_tail: str) -> str:
    """The line of etcdctl's stderr that says what went wrong (its log lines are JSON)."""
    lines = [line.strip() for line in stderr_tail.splitlines() if line.strip()]
    plain = [line for line in lines if not line.startswith("{")]
    for line in reversed(plain):
        if line.startswith("Error:"):
            return line.split(":", 1)[1].strip()
    if plain:
        return plain[-1]
    return lines[-1][:200] if lines else "no answer"
