"""A real etcd (Debian's etcd-server) on free loopback ports, plain or with TLS, for tests."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.services import free_port, wait_for_port

MAX_TXN_OPS = 20000


@dataclass(frozen=True)
class Tls:
    """A self-signed CA and the server and client certificates it signed (openssl)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def make(cls, root: Path) -> Tls:
        """Create the CA and both certificates under ``root``."""
        root.mkdir(parents=True, exist_ok=True)
        ca, ca_key = root / "ca.crt", root / "ca.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
            + ["-subj", "/CN=kosmos-test-ca", "-keyout", str(ca_key), "-out", str(ca)],
            check=True,
            capture_output=True,
        )
        pairs = []
        for name in ("server", "client"):
            cert, key, csr = root / f"{name}.crt", root / f"{name}.key", root / f"{name}.csr"
            subprocess.run(
                ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}"]
                + ["-keyout", str(key), "-out", str(csr)],
                check=True,
                capture_output=True,
            )
            ext = root / f"{name}.ext"
            usage = "serverAuth" if name == "server" else "clientAuth"
            ext.write_text(f"subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n")
            subprocess.run(
                ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key)]
                + ["-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(cert)],
                check=True,
                capture_output=True,
            )
            pairs.append((cert, key))
        (server_cert, server_key), (client_cert, client_key) = pairs
        return cls(ca, server_cert, server_key, client_cert, client_key)


class EtcdServer:
    """One etcd member on loopback; ``tls`` makes clients present a certificate."""

    def __init__(
        self,
        root: Path,
        tls: Tls | None = None,
        *,
        data_dir: Path | None = None,
        name: str = "test",
        peer_port: int | None = None,
    ) -> None:
        self.root = root
        self.tls = tls
        self.data_dir = data_dir or root / "data"
        self.name = name
        self.port = free_port()
        self.peer_port = peer_port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> EtcdServer:
        """Start it on its data dir and wait until it listens and answers."""
        peer = f"http://127.0.0.1:{self.peer_port}"
        argv = [
            *("etcd", f"--name={self.name}", f"--data-dir={self.data_dir}"),
            *(f"--listen-client-urls={self.url}", f"--advertise-client-urls={self.url}"),
            *(f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}"),
            f"--initial-cluster={self.name}={peer}",
            f"--max-txn-ops={MAX_TXN_OPS}",
        ]
        if self.tls:
            argv += [
                f"--cert-file={self.tls.server_cert}",
                f"--key-file={self.tls.server_key}",
                f"--trusted-ca-file={self.tls.ca}",
                "--client-cert-auth",
            ]
        log = (self.root / "etcd.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, proc=self.proc)
        self.ctl("endpoint", "health")
        return self

    def stop(self) -> None:
        """Stop it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def ctl(self, *args: str, stdin: str | None = None) -> str:
        """Run etcdctl against it; its stdout."""
        argv = ["etcdctl", f"--endpoints={self.url}"]
        if self.tls:
            argv += [
                f"--cacert={self.tls.ca}",
                f"--cert={self.tls.client_cert}",
                f"--key={self.tls.client_key}",
            ]
        done = subprocess.run(
            [*argv, *args], input=stdin, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {done.stderr.strip()[-500:]}")
        return done.stdout

    def put_many(self, items: Iterable[tuple[str, str]]) -> None:
        """Put many keys in one transaction (etcdctl txn reads them from stdin)."""
        lines = "".join(f"put {key} {value}\n" for key, value in items)
        self.ctl("txn", stdin=f"\n{lines}\n\n")

    def count(self) -> int:
        """How many keys it holds now."""
        out = self.ctl("get", "", "--prefix", "--keys-only", "--limit=1", "-w", "json")
        return int(json.loads(out).get("count", 0))
