"""Text from a board or a YAML file never reaches the terminal as control sequences.

A board's error text, an agent document's fields, a devices.yaml path: each could hold an OSC (set the
window title, or with an unterminated one swallow what follows), a screen clear, a cursor move, a C1
control. The CLI shows them escaped (`\\x1b`) in tables, error lines and plain lines; --json already
escapes them (JSON's \\u001b). Local boards whose `python:` is a wrapper stand in for a hostile board.
"""

from __future__ import annotations

import json
import os
import pty
import select
import struct
import sys
import termios
import time
from fcntl import ioctl
from pathlib import Path

import pytest

from edgeq.testing.fleet import run_cli

PAYLOAD = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\u009b31m c1\r boom\x00"
RAW = ("\x1b", "\x07", "\u009b", "\r", "\x00")


def _wrapper(tmp_path: Path, name: str, body: str) -> Path:
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return p


def _devices(tmp_path: Path, python: Path, **extra: str) -> Path:
    entry = {"name": "loc", "transport": "local", "workdir": str(tmp_path / "w"), "python": str(python), **extra}
    p = tmp_path / "devices.yaml"
    p.write_text("devices:\n  - " + json.dumps(entry) + "\n")
    return p


def _stderr_says(tmp_path: Path) -> Path:
    """A board whose python prints the payload on stderr and fails: its text lands in the error."""
    payload = PAYLOAD.replace("\x00", "").encode().decode("latin-1")  # printf writes the UTF-8 bytes as given
    octal = "".join(f"\\{ord(c):03o}" for c in payload)
    return _wrapper(tmp_path, "py-stderr", f'printf "{octal}\\n" >&2\nexit 1\n')


def _agent_says(tmp_path: Path) -> Path:
    """A board whose 'agent' answers with a failure document whose fields hold the payload."""
    doc = json.dumps({"ok": False, "kind": "bad\x1b[2Jkind", "error": PAYLOAD, "protocol": 1})
    return _wrapper(tmp_path, "py-doc", f"cat <<'EOF'\n{doc}\nEOF\nexit 3\n")


@pytest.mark.parametrize("board", [_stderr_says, _agent_says])
def test_board_text_is_escaped_in_tables_and_errors(tmp_path, board):
    dev = _devices(tmp_path, board(tmp_path))
    code, out, err = run_cli("devices", "check", "--devices", dev)
    assert code == 8, (out, err)
    for raw in RAW:
        assert raw not in out and raw not in err, (raw, out, err)
    assert "\\x1b]0;pwned\\x07" in err and "\\x1b[2J" in err, err  # shown, as text
    assert "pwned" in out  # the table's problem column holds it too, escaped

    code, out, _ = run_cli("devices", "check", "--devices", dev, "--json")
    assert all(raw not in out for raw in RAW) and json.loads(out)  # JSON's own escapes


def test_yaml_text_is_escaped_in_devices_list(tmp_path):
    dev = _devices(tmp_path, Path("/usr/bin/python3\x1b[2J"), workdir=str(tmp_path / "w\x1b]0;pwned\x07"))
    code, out, err = run_cli("devices", "list", "--devices", dev)
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out, out
    assert "python3\\x1b[2J" in out and "\\x1b]0;pwned\\x07" in out.replace("\n", ""), out


def test_on_a_real_terminal_no_sequence_from_the_board_is_sent(tmp_path):
    """In a pty (rich styles on), the board's OSC, screen clear and C1 CSI arrive as text, never as bytes."""
    dev = _devices(tmp_path, _stderr_says(tmp_path))
    pid, fd = pty.fork()
    if pid == 0:  # the child: edgeq on the pty, 200 columns
        os.execvpe(sys.executable, [sys.executable, "-m", "edgeq", "devices", "check", "--devices", str(dev)], os.environ)  # noqa: S606
    ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    buf = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 1)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    _, status = os.waitpid(pid, 0)
    text = buf.decode("utf-8", "replace")
    assert os.waitstatus_to_exitcode(status) == 8, text
    for seq in ("\x1b]", "\x1b[2J", "\u009b", "\x07"):
        assert seq not in text, (seq, text)
    assert "\\x1b]0;pwned\\x07" in text.replace("\r\n", ""), text
