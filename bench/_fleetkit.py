"""Pieces of bench/fleet_bench.py: the bare invoke loop it compares the agent with, a byte-counting TCP relay, and
the CPU the sshd farm used."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

# The agent's work minus the agent: load, allocate, seeded random input, warm-up, then invokes until >= runs and
# >= min_s seconds, each between two clock reads (the least a per-invoke latency needs); the loop's wall is kept too.
BARE = """\
import json, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
path, threads, warmup, runs, min_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
it = Interpreter(model_path=path, num_threads=threads)
it.allocate_tensors()
rng = np.random.default_rng(0)
for d in it.get_input_details():
    dt = np.dtype(d["dtype"])
    shape = tuple(int(x) for x in d["shape"])
    if dt.kind in "iu":
        info = np.iinfo(dt)
        x = rng.integers(int(info.min), int(info.max), size=shape, endpoint=True, dtype=dt)
    else:
        x = rng.random(size=shape).astype(dt)
    it.set_tensor(d["index"], x)
invoke, perf = it.invoke, time.perf_counter
for _ in range(warmup):
    invoke()
samples, timed = [], 0.0
start = perf()
while len(samples) < runs or timed < min_s:
    t = perf()
    invoke()
    dt = perf() - t
    samples.append(dt)
    timed += dt
wall = perf() - start
print(json.dumps({"samples": samples, "wall": wall}))
"""


def boards_cpu(farm) -> float:
    """CPU seconds used so far by the farm's sshd listeners and everything they forked and reaped
    (sessions, shells, the agent): utime + stime + cutime + cstime from /proc/PID/stat."""
    tck = os.sysconf("SC_CLK_TCK")
    total = 0
    for b in farm.boards:
        f = Path(f"/proc/{b.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in f[11:15])
    return total / tck


class CountingRelay:
    """A loopback TCP relay in front of one sshd that counts the bytes each way (what really crossed)."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.up = 0  # client -> board: the SSH stream, encrypted, packet headers and MACs included
        self.down = 0
        self._lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(c, s, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, "down"), daemon=True).start()

    def _pump(self, src, dst, attr):
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
                with self._lock:
                    setattr(self, attr, getattr(self, attr) + len(data))
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def reset(self) -> None:
        with self._lock:
            self.up = self.down = 0

    def close(self) -> None:
        self.sock.close()
