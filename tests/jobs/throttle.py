"""A bandwidth-limited TCP proxy: makes a real S3 upload last long enough to interrupt."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from tests.services import free_port

CHUNK = 64 * 1024


class ThrottledProxy:
    """Forwards 127.0.0.1:port to an upstream port, uploads capped at ``rate`` bytes/second.

    When the upstream is down, a new connection is accepted and closed at once, as a load
    balancer in front of a dead store would; live connections break when it dies.
    """

    def __init__(self, upstream_port: int, rate: int) -> None:
        self.upstream_port = upstream_port
        self.rate = rate
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        self._next = time.monotonic()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []

    @property
    def url(self) -> str:
        """The endpoint URL to give boto3."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThrottledProxy:
        """Accept connections in a background thread."""
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listener and every live connection."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, throttled: bool) -> None:
        try:
            while data := source.recv(CHUNK):
                if throttled:
                    self._wait_for(len(data))
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def _wait_for(self, size: int) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + size / self.rate
        time.sleep(max(0.0, start - now))
