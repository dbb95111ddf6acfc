"""The HTTP side of `edgeq metrics serve`: a WSGI server whose threads, connections and queues are bounded.

prometheus_client's own server starts one thread per connection and never times a read out: 300 idle
connections kept 302 threads. Here one thread accepts and one reads every request in a selector, non-blocking:
no thread per connection, and no worker for a client still sending. A request gets a worker only once it has
arrived whole, and it must arrive within `request_timeout` of its first byte: one deadline for the whole request,
not per read, so a client that sends a byte now and then cannot hold anything. A connection that sends nothing
is closed after `idle_timeout`; past `max_connections` the longest-waiting one is closed, so a flood of idle
sockets never locks a scraper out.

A complete request goes to one of two lanes: `report_paths` (/report renders HTML for seconds of CPU) to
their own worker, everything else (a scrape: milliseconds) to `workers` threads of its own, so a scrape never
waits behind a report. A lane holds its workers' requests plus a bounded queue; past that the request is
answered at once with 503 and Retry-After.
"""

from __future__ import annotations

import contextlib
import io
import math
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

WORKERS = 4  # the scrape lane; a scrape reads SQLite for milliseconds, Prometheus scrapes one target at a time
SCRAPE_QUEUE = 64  # scrapes waiting for a worker; more than this is a flood, answered 503
REPORT_WORKERS = 1  # a report is seconds of CPU under the GIL: a second renderer would halve the scrapes' share
REPORT_QUEUE = 8  # reports waiting behind the one rendering (a dashboard's links open a few); past it 503
MAX_CONNECTIONS = 128  # connections still sending their request; the longest-waiting is closed past it
IDLE_TIMEOUT_S = 10.0  # a connection that sends nothing for this long is closed (Prometheus sends at once)
REQUEST_TIMEOUT_S = 10.0  # a whole request must arrive within this of its first byte; also bounds writing the reply
MAX_HEAD_BYTES = 65536  # request line and headers (http.server's own line limit)
MAX_BODY_BYTES = 65536  # the exporter's paths take no body: this is room for a client's habits, not for data
RETRY_AFTER_MAX_S = 60


class _Refused(Exception):
    def __init__(self, status: str, text: str):
        super().__init__(status)
        self.status, self.text = status, text


def request_size(buf: bytes | bytearray) -> tuple[int, str] | None:
    """(bytes the request takes, its target) once its head has arrived, None while it has not; _Refused for a
    head or body past the bounds."""
    crlf, lf = buf.find(b"\r\n\r\n"), buf.find(b"\n\n")
    end, sep = (lf, 2) if lf != -1 and (crlf == -1 or lf < crlf) else (crlf, 4)
    if end == -1 or end > MAX_HEAD_BYTES:
        if len(buf) > MAX_HEAD_BYTES:
            raise _Refused("431 Request Header Fields Too Large", f"the request head is over {MAX_HEAD_BYTES} bytes")
        return None
    lines = bytes(buf[:end]).decode("iso-8859-1").splitlines()
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            if not (value.strip().isascii() and value.strip().isdigit()):
                raise _Refused("400 Bad Request", f"Content-Length {value.strip()!r} is not a number of bytes")
            length = int(value)
    if length > MAX_BODY_BYTES:
        raise _Refused("413 Content Too Large", f"a request body is at most {MAX_BODY_BYTES} bytes here")
    words = lines[0].split() if lines else []
    return end + sep + length, words[1] if len(words) > 1 else ""


def _reply(conn: socket.socket, status: str, text: str, headers: Iterable[tuple[str, str]] = ()) -> None:
    """A short answer written from the selector thread: it fits an empty send buffer, so it never blocks."""
    body = f"{text}\n".encode()
    head = [f"HTTP/1.0 {status}", "Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers] + ["Connection: close"]
    with contextlib.suppress(OSError):
        conn.send("\r\n".join(head).encode() + b"\r\n\r\n" + body)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """No access log on stderr: the exporter's output is its startup line."""


class _ReadHandler(_QuietHandler):
    """Serves a request the selector has already read whole: the handler never waits on the client for input."""

    def __init__(self, data: bytes, request: Any, client_address: Any, server: Any):
        self._data = data
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self.rfile = io.BytesIO(self._data)


class _Lane:
    """`workers` threads fed by a queue; at most `workers + queue` requests held, served or waiting."""

    def __init__(self, name: str, workers: int, queue_bound: int, serve: Callable[..., None]):
        self.name, self.capacity, self._serve = name, workers + queue_bound, serve
        self._q: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._held, self._lock = 0, threading.Lock()
        self.last_seconds = 0.0  # how long the last request took: what a refused client is told to wait
        self._threads = [
            threading.Thread(target=self._run, name=f"edgeq-exporter-{name}-{i}", daemon=True) for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def offer(self, item: tuple[Any, ...]) -> bool:
        with self._lock:
            if self._held >= self.capacity:
                return False
            self._held += 1
        self._q.put(item)
        return True

    def retry_after(self) -> int:
        return min(RETRY_AFTER_MAX_S, max(1, math.ceil(self.last_seconds)))

    def _run(self) -> None:
        while (item := self._q.get()) is not None:
            t = time.monotonic()
            try:
                self._serve(*item)
            finally:
                self.last_seconds = time.monotonic() - t
                with self._lock:
                    self._held -= 1

    def close(self) -> list[tuple[Any, ...]]:
        """Stop the workers (a request being served finishes in its daemon thread); returns the requests still waiting."""
        left = []
        with contextlib.suppress(queue.Empty):
            while True:
                item = self._q.get_nowait()
                if item is not None:
                    left.append(item)
        for _ in self._threads:
            self._q.put(None)
        return left


@dataclass
class _Conn:
    addr: Any
    since: float  # accepted
    first_byte: float | None = None
    buf: bytearray = field(default_factory=bytearray)


class BoundedWSGIServer(WSGIServer):
    """A WSGIServer with bounded threads, connections, queues and request time; `report_paths` get their own lane."""

    request_queue_size = 128
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        workers: int = WORKERS,
        scrape_queue: int = SCRAPE_QUEUE,
        report_paths: Iterable[str] = (),
        report_workers: int = REPORT_WORKERS,
        report_queue: int = REPORT_QUEUE,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout: float = IDLE_TIMEOUT_S,
        request_timeout: float = REQUEST_TIMEOUT_S,
    ):
        host = address[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__(address, _QuietHandler)  # unused: _serve_one hands each request, read whole, to a _ReadHandler
        self.max_connections, self.idle_timeout, self.request_timeout = max_connections, idle_timeout, request_timeout
        self.report_paths = frozenset(report_paths)
        self._scrapes = _Lane("scrapes", workers, scrape_queue, self._serve_one)
        self._reports = _Lane("reports", report_workers, report_queue, self._serve_one)
        self._sel = selectors.DefaultSelector()
        self._conns: dict[socket.socket, _Conn] = {}  # connections still sending their request
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="edgeq-exporter-read", daemon=True)
        self._watcher.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the new connection to the selector (the accept thread never reads from a client)."""
        request.setblocking(False)
        with self._lock:
            while len(self._conns) >= self.max_connections:
                self._drop(min(self._conns, key=lambda s: self._conns[s].since))
            self._conns[request] = _Conn(client_address, time.monotonic())
            self._sel.register(request, selectors.EVENT_READ)

    def _watch(self) -> None:
        while not self._closing.is_set():
            events = self._sel.select(timeout=0.1)
            now = time.monotonic()
            with self._lock:
                for key, _ in events:
                    if key.fileobj in self._conns:
                        self._read(key.fileobj, now)
                for conn in [c for c, st in self._conns.items() if now > self._deadline(st)]:
                    self._drop(conn)

    def _deadline(self, st: _Conn) -> float:
        return st.since + self.idle_timeout if st.first_byte is None else st.first_byte + self.request_timeout

    def _read(self, conn: socket.socket, now: float) -> None:
        st = self._conns[conn]
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the client closed (or reset) before its request was whole
            self._drop(conn)
            return
        if st.first_byte is None:
            st.first_byte = now
        st.buf += data
        try:
            size = request_size(st.buf)
        except _Refused as e:
            self._answer(conn, e.status, e.text)
            return
        if size is None or len(st.buf) < size[0]:
            return
        lane = self._reports if unquote(size[1].split("?", 1)[0], "iso-8859-1") in self.report_paths else self._scrapes
        self._forget(conn)
        if not lane.offer((conn, st.addr, bytes(st.buf[: size[0]]))):
            wait = lane.retry_after()
            text = f"{lane.name} are busy ({lane.capacity} being served or waiting): retry in {wait} s"
            self._answer(conn, "503 Service Unavailable", text, [("Retry-After", str(wait))])

    def _answer(self, conn: socket.socket, status: str, text: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        _reply(conn, status, text, headers)
        self._drop(conn)

    def _forget(self, conn: socket.socket) -> None:
        self._conns.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn)

    def _drop(self, conn: socket.socket) -> None:
        self._forget(conn)
        self.shutdown_request(conn)

    def _serve_one(self, conn: socket.socket, addr: Any, data: bytes) -> None:
        try:
            conn.settimeout(self.request_timeout)  # the reply's writes: a client that stops reading is dropped
            _ReadHandler(data, conn, addr, self)
        except Exception:  # noqa: S110 - a client's broken request or vanished socket ends its connection, not the server
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
            for conn in list(self._conns):
                self._drop(conn)
        for lane in (self._scrapes, self._reports):
            for conn, *_ in lane.close():
                self.shutdown_request(conn)
        self._sel.close()
        super().server_close()


def start(app: Any, host: str, port: int, **bounds: Any) -> tuple[BoundedWSGIServer, threading.Thread]:
    """Serve a WSGI app from a daemon thread: (server, thread); stop with server.shutdown() + server_close()."""
    server = BoundedWSGIServer((host, port), **bounds)
    server.set_app(app)
    t = threading.Thread(target=server.serve_forever, name="edgeq-exporter-accept", daemon=True)
    t.start()
    return server, t
