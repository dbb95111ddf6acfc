"""A farm board whose sessions cannot reach any network: every proxy and pip index points at a dead port.

`devices setup` must install from the wheels the host uploaded; a pip on the board that tried PyPI
would fail here. Used by tests/farm/test_setup.py and bench/setup_bench.py.
"""

from __future__ import annotations

import socket
import subprocess
import time

from edgeq.testing.sshfarm import SSHD, FarmBoard

DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback here
OFFLINE_ENV = {
    "http_proxy": DEAD,
    "https_proxy": DEAD,
    "HTTP_PROXY": DEAD,
    "HTTPS_PROXY": DEAD,
    "PIP_INDEX_URL": f"{DEAD}/simple",
    "PIP_FIND_LINKS": "",
}


def make_offline(board: FarmBoard) -> None:
    """Restart the board's sshd on the same port with OFFLINE_ENV set for every session (sshd SetEnv)."""
    cfg = board.root / "sshd_config"
    extra = " ".join(f"{k}={v}" for k, v in OFFLINE_ENV.items() if v)
    text = cfg.read_text()
    if extra not in text:
        cfg.write_text(text.replace("SetEnv HOME=", f"SetEnv {extra} HOME=", 1))
    board.drop_connections()
    if board.proc is not None:
        board.proc.terminate()
        board.proc.wait(10)
    with open(board.log or board.root / "sshd.log", "ab") as logf:
        board.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [SSHD, "-D", "-e", "-f", str(cfg), "-p", str(board.port)], stdout=logf, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", board.port), timeout=0.5) as s:
                s.settimeout(2)
                if s.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd for {board.name} did not come back on port {board.port}")
