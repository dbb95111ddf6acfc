"""`edgeq metrics serve` under 300 idle connections (real sockets, a real server process): its threads stay
bounded, it still answers a scrape, and idle connections are closed after the timeout."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from edgeq import metrics
from edgeq.results import load_manifest, record_run
from edgeq.testing.promfarm import free_port, synthetic_manifest

REPO = Path(__file__).resolve().parents[2]
# accept + request reader + 4 scrape workers + 1 report worker (edgeq.metrics.exporter), the main thread, slack
THREAD_BOUND = 10


def _idle(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        socks.append(s)
    return socks


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:  # noqa: S310 - loopback
        return r.read().decode()


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_idle_connections_do_not_take_threads(tmp_path):
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("r1", n=50)), db)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "edgeq", "metrics", "serve", "--port", str(port), "--db", str(db)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    socks: list[socket.socket] = []
    try:
        assert proc.stderr is not None and "serving http://" in proc.stderr.readline()
        assert "edgeq_benchmark" in _scrape(port) or "edgeq_" in _scrape(port)
        socks = _idle(port, 300)
        time.sleep(1.0)
        peak = _threads(proc.pid)
        t = time.monotonic()
        body = _scrape(port)
        assert time.monotonic() - t < 5 and "edgeq_history_up 1.0" in body
        peak = max(peak, _threads(proc.pid))
        assert peak <= THREAD_BOUND, f"{peak} threads with 300 idle connections (bound {THREAD_BOUND})"
    finally:
        for s in socks:
            s.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_idle_connections_are_closed_after_the_timeout(tmp_path):
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("r1", n=50)), db)
    server, _ = metrics.serve("127.0.0.1", 0, db_path=db, idle_timeout=1.0, request_timeout=1.0, max_connections=50)
    port = server.server_address[1]
    try:
        socks = _idle(port, 40)
        half = socket.create_connection(("127.0.0.1", port), timeout=5)
        half.sendall(b"GET /metrics HTTP/1.1\r\n")  # a request that never ends: dropped after the read timeout
        time.sleep(3.0)
        for s in [*socks, half]:
            s.settimeout(2)
            assert s.recv(1) == b"", "connection still open after the idle/read timeout"
            s.close()
        # past max_connections, the longest-idle connection makes room: a scraper is never locked out
        flood = _idle(port, 80)
        assert "edgeq_history_up 1.0" in _scrape(port)
        flood[0].settimeout(2)
        assert flood[0].recv(1) == b""  # the oldest was closed to make room
        for s in flood:
            s.close()
    finally:
        server.shutdown()
        server.server_close()
