"""moto's S3 server over HTTPS, with a self-signed certificate made for 127.0.0.1.

pgBackRest speaks only HTTPS to S3; the certificate is both the server's and the CA that
clients are given (``AWS_CA_BUNDLE`` for boto3, ``repo1-storage-ca-file`` for pgBackRest),
so every client verifies it rather than turning verification off.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.services import free_port, wait_for_port

HOST = "127.0.0.1"
# werkzeug's server closes a TLS connection without the close_notify alert; pgBackRest,
# which reads a bodiless response to its end, then fails with "unexpected eof while
# reading". Closing each connection with a proper TLS shutdown first fixes that.
LAUNCH = """
import ssl, sys
from werkzeug import serving
plain = serving.BaseWSGIServer.shutdown_request
def shutdown_request(self, request):
    if isinstance(request, ssl.SSLSocket):
        try:
            request.settimeout(1.0)
            request.unwrap()
        except (OSError, ValueError):
            pass
    plain(self, request)
serving.BaseWSGIServer.shutdown_request = shutdown_request
from moto.server import main
sys.exit(main())
"""


@dataclass(frozen=True)
class Certificate:
    """A PEM certificate (readable by all: PostgreSQL's commands need it) and its key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Server:
    """A running moto server's port and https:// endpoint."""

    port: int

    @property
    def url(self) -> str:
        """The endpoint URL."""
        return f"https://{HOST}:{self.port}"


def self_signed(directory: Path) -> Certificate:
    """Write a one-day certificate for 127.0.0.1 (IP and DNS names) that is its own CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.now(UTC)
    names = [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName(HOST)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    paths = Certificate(directory / "moto-cert.pem", directory / "moto-key.pem")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.cert.chmod(0o644)
    fd = os.open(paths.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return paths


@contextlib.contextmanager
def server(cert: Certificate) -> Iterator[Server]:
    """moto over HTTPS for the block; stopped (killed if need be) however the block ends."""
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    argv = [sys.executable, "-c", LAUNCH, "-H", HOST, "-p", str(port)]
    argv += ["-c", str(cert.cert), "-k", str(cert.key)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_for_port(port, proc=proc)
        _wait_answering(Server(port).url, cert.cert)
        yield Server(port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_answering(url: str, cafile: Path) -> None:
    context = ssl.create_default_context(cafile=str(cafile))
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1, context=context).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def client(endpoint: str) -> Any:
    """A boto3 S3 client for setup (it verifies against ``AWS_CA_BUNDLE``)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(request_checksum_calculation="when_required"),
    )
