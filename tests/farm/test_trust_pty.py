"""`edgeq devices trust NAME` answered at its prompt through a real pseudo-terminal, as a person does.

The child sees a terminal on stdin/stdout/stderr. `click` is made unimportable for it: Typer >= 0.29
does not install click, and the prompt path once imported it (a crash on every fresh install).
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeq.errors import ExitCode
from edgeq.testing import sshfarm
from edgeq.testing.fleet import board_entry, write_devices

NO_CLICK = "raise ImportError('click is not installed (as on a fresh install: Typer no longer depends on it)')\n"


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    buf = b""
    end = time.monotonic() + timeout
    while needle not in buf:
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {needle!r} on the terminal within {timeout}s; saw:\n{buf.decode(errors='replace')}")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            buf += chunk
    return buf


def _trust_at_prompt(tmp_path: Path, dev: Path, answer: bytes) -> tuple[int, str]:
    shadow = tmp_path / "noclick" / "click"
    shadow.mkdir(parents=True, exist_ok=True)
    (shadow / "__init__.py").write_text(NO_CLICK)
    env = {**os.environ, "EDGEQ_HOME": str(tmp_path / "home"), "PYTHONPATH": os.pathsep.join([str(shadow.parent), *sys.path])}
    master, slave = pty.openpty()
    p = subprocess.Popen(
        [sys.executable, "-m", "edgeq", "devices", "trust", "pi", "--devices", str(dev)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    os.close(slave)
    try:
        seen = _read_until(master, b"[y/N]", 60)
        os.write(master, answer)
        code = p.wait(60)
        while True:  # drain what is left on the terminal
            r, _, _ = select.select([master], [], [], 0.2)
            if not r:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    return code, seen.decode(errors="replace")


@pytest.mark.parametrize(
    ("answer", "trusted"),
    [(b"y\r", True), (b"n\r", False), (b"\r", False), (b"\x04", False)],
    ids=["yes", "no", "default-no", "ctrl-d"],
)
def test_trust_prompt_on_a_real_terminal(farm, tmp_path, answer, trusted):
    b = farm.boards[0]
    kh = tmp_path / "known_hosts"
    dev = write_devices(tmp_path, board_entry(farm, b, tmp_path, "pi", known_hosts=str(kh)))
    code, screen = _trust_at_prompt(tmp_path, dev, answer)
    fp = sshfarm.fingerprint_of(Path(str(b.host_key) + ".pub"))
    assert "Traceback" not in screen and "internal error" not in screen and "click" not in screen, screen
    assert fp in screen  # the fingerprint is shown before the question
    if trusted:
        assert code == 0, screen
        assert kh.read_text().strip() == f"[127.0.0.1]:{b.port} {b.host_pub.split()[0]} {b.host_pub.split()[1]}"
        assert f"{fp} added in {kh}" in " ".join(screen.split())
    else:
        assert code == ExitCode.FLEET, screen
        assert "declined" in screen and not kh.exists()
