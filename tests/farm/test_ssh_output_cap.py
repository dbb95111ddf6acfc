"""A board command's output is held in memory up to a cap per stream, keeping the tail, over real SSH.

A runaway wrapper or a chatty login shell can print without end; edgeq keeps the last 64 MiB of stdout (the
agent's result is its last line) and the last 1 MiB of stderr (a traceback is its end), with a marker line
saying how much was dropped.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeq.fleet.inventory.devices import load_inventory
from edgeq.fleet.transport.ssh import SSHTransport
from edgeq.testing.fleet import board_entry, write_devices

MiB = 1 << 20
# argv: stream (stdout|stderr), N, last: prints N lines of 1 MiB on that stream, then the line `last`
FLOOD = (
    "import sys\nstream = getattr(sys, sys.argv[1]).buffer\nline = b'x' * ((1 << 20) - 1) + b'\\n'\n"
    "for _ in range(int(sys.argv[2])):\n    stream.write(line)\nstream.write(sys.argv[3].encode() + b'\\n')\n"
)


@pytest.fixture
def transport(farm, tmp_path):
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path, "pi"))
    t = SSHTransport(load_inventory(dev).devices[0]).connect()
    try:
        yield t
    finally:
        t.close()


def test_stdout_beyond_the_cap_keeps_the_tail(transport):
    """Proves: 100 MiB on stdout leaves 64 MiB (marker line included) in memory, ending with the last line."""
    rc, out, err = transport.run([sys.executable, "-c", FLOOD, "stdout", "100", '{"ok": true, "last": 1}'], 120)
    assert rc == 0, err
    assert len(out) == 64 * MiB, len(out)  # the marker line counts: the host parser reads at most 64 Mi characters
    assert out.endswith('{"ok": true, "last": 1}\n')
    first = out.split("\n", 1)[0]
    total = 100 * MiB + len('{"ok": true, "last": 1}\n')
    assert first == f"[edgeq: the board's stdout was cut to its last {len(out) - len(first) - 1} of {total} bytes]"


def test_stderr_beyond_the_cap_keeps_the_tail(transport):
    rc, out, err = transport.run([sys.executable, "-c", FLOOD, "stderr", "5", "Traceback: the end"], 60)
    assert rc == 0 and out == ""
    assert len(err) == MiB and err.endswith("Traceback: the end\n")
    assert err.startswith(f"[edgeq: the board's stderr was cut to its last {MiB - 73} of {5 * MiB + 19} bytes]\n"), err[:200]


def test_output_under_the_cap_is_untouched(transport):
    rc, out, err = transport.run([sys.executable, "-c", FLOOD, "stdout", "3", "done"], 60)
    assert rc == 0 and len(out) == 3 * MiB + 5 and out.endswith("done\n") and not out.startswith("[edgeq")


def _vm_hwm_kib(pid: int) -> int:
    """The process's peak resident set so far (kB), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def test_cli_memory_stays_bounded_with_a_flooding_board(farm, tmp_path):
    """`edgeq devices check` of a board whose python wrapper prints 300 MiB before every command still reads
    the agent's result, and its peak memory stays far below what holding 300 MiB per command takes."""
    wrapper = tmp_path / "python-chatty"
    flood = shlex.quote(FLOOD)
    wrapper.write_text(f"#!/bin/sh\n{sys.executable} -c {flood} stdout 300 'noise end'\nexec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    dev = write_devices(tmp_path, board_entry(farm, farm.boards[0], tmp_path, "pi", python=str(wrapper)))
    with open(tmp_path / "out", "wb") as fo, open(tmp_path / "err", "wb") as fe:
        p = subprocess.Popen([sys.executable, "-m", "edgeq", "devices", "check", "--devices", str(dev)], stdout=fo, stderr=fe)  # noqa: S603
        # The process's own high-water mark (VmHWM, reset by exec), read until it exits. Not wait4's ru_maxrss: a
        # child forked from a big pytest (1.4 GB late in the full suite) keeps the parent's high-water across exec.
        hwm_kib, deadline = 0, time.monotonic() + 300
        while p.poll() is None:
            assert time.monotonic() < deadline, "edgeq devices check did not finish"
            hwm_kib = max(hwm_kib, _vm_hwm_kib(p.pid))
            time.sleep(0.02)
    peak_mib = hwm_kib / 1024
    print(f"edgeq devices check, 300 MiB of stdout per board command: peak RSS {peak_mib:.0f} MiB")
    assert p.returncode == 0, ((tmp_path / "out").read_text()[-2000:], (tmp_path / "err").read_text()[-2000:])
    assert peak_mib < 600, f"peak RSS {peak_mib:.0f} MiB"  # 1322 MiB before the cap (and the board unreadable)
