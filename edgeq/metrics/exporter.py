"""The HTTP side of `edgeq metrics serve`: a WSGI server whose threads and connections are bounded.

prometheus_client's own server starts one thread per connection and never times a read out: 300 idle
connections kept 302 threads. Here one thread accepts, one watches idle connections in a selector (no
thread each), and a fixed pool of workers serves only connections that have sent something, each read
bounded by a timeout. An idle connection is closed after `idle_timeout`; past `max_connections` the
longest-idle one is closed, so a flood of idle sockets never locks a scraper out.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

WORKERS = 4  # a scrape reads SQLite for milliseconds; Prometheus scrapes one target at a time
MAX_CONNECTIONS = 128  # open connections (idle or waiting for a worker); the longest-idle is closed past it
IDLE_TIMEOUT_S = 10.0  # a connection that sends no request for this long is closed (Prometheus sends at once)
READ_TIMEOUT_S = 10.0  # each read of a request being served (a client that stalls mid-request is dropped)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """No access log on stderr: the exporter's output is its startup line."""


class BoundedWSGIServer(WSGIServer):
    """A WSGIServer with at most `workers` handler threads and `max_connections` open connections."""

    request_queue_size = 128
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        workers: int = WORKERS,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
    ):
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__(address, _QuietHandler)
        self.max_connections, self.idle_timeout, self.read_timeout = max_connections, idle_timeout, read_timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgeq-exporter")
        self._sel = selectors.DefaultSelector()
        self._idle: dict[socket.socket, tuple[float, Any]] = {}  # connection -> (since, client address)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="edgeq-exporter-idle", daemon=True)
        self._watcher.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Park the new connection until it sends something (the accept thread never blocks on a client)."""
        with self._lock:
            while len(self._idle) >= self.max_connections:
                oldest = min(self._idle, key=lambda s: self._idle[s][0])
                self._drop(oldest)
            self._idle[request] = (time.monotonic(), client_address)
            self._sel.register(request, selectors.EVENT_READ)

    def _watch(self) -> None:
        while not self._closing.is_set():
            with self._lock:
                has_any = bool(self._idle)
            events = self._sel.select(timeout=0.2) if has_any else []
            if not has_any:
                time.sleep(0.05)
            now = time.monotonic()
            with self._lock:
                for key, _ in events:
                    conn = key.fileobj
                    if conn in self._idle:
                        _, addr = self._idle.pop(conn)
                        self._sel.unregister(conn)
                        self._pool.submit(self._serve_one, conn, addr)
                for conn in [c for c, (since, _) in self._idle.items() if now - since > self.idle_timeout]:
                    self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        self._idle.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn)
        self.shutdown_request(conn)

    def _serve_one(self, conn: socket.socket, addr: Any) -> None:
        try:
            conn.settimeout(self.read_timeout)
            self.finish_request(conn, addr)
        except Exception:  # noqa: S110 - a client's broken or timed-out request ends its connection, not the server
            pass
        finally:
            self.shutdown_request(conn)

    def server_close(self) -> None:
        if not hasattr(self, "_closing"):  # the bind failed inside WSGIServer.__init__: nothing of ours started
            super().server_close()
            return
        self._closing.set()
        self._watcher.join(timeout=2)
        with self._lock:
            for conn in list(self._idle):
                self._drop(conn)
        self._pool.shutdown(wait=False, cancel_futures=True)
        super().server_close()


def start(app: Any, host: str, port: int, **bounds: Any) -> tuple[BoundedWSGIServer, threading.Thread]:
    """Serve a WSGI app from a daemon thread: (server, thread); stop with server.shutdown() + server_close()."""
    server = BoundedWSGIServer((host, port), **bounds)
    server.set_app(app)
    t = threading.Thread(target=server.serve_forever, name="edgeq-exporter-accept", daemon=True)
    t.start()
    return server, t
