"""Progress bars: on a terminal's stderr for training, calibration, deploy and benchmark; never in --json or piped output."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

FLEET = {
    "deploy": {"targets": ["local"], "variants": ["int8"]},
    "benchmark": {"targets": ["local"], "variants": ["int8"], "runs": 5, "warmup": 1, "min_seconds": 0.0},
}


def _run_with_tty_stderr(args, home, cwd) -> tuple[int, str, str]:
    """stdout piped (like `edgeq run ... --json > out.json`), stderr a real pseudo-terminal."""
    master, slave = pty.openpty()
    env = {**os.environ, "EDGEQ_HOME": str(home), "COLUMNS": "120", "TERM": "xterm"}
    p = subprocess.Popen([sys.executable, "-m", "edgeq", *map(str, args)], stdout=subprocess.PIPE, stderr=slave, cwd=cwd, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    out = p.stdout.read().decode()
    p.wait(timeout=600)
    os.close(master)
    return p.returncode, out, ANSI.sub("", b"".join(chunks).decode(errors="replace")).replace("\r", "\n")


def test_bars_on_a_terminal_and_clean_json(write_pipeline, home, tmp_path, edgeq):
    path = write_pipeline(FLEET)
    rc, out, err = _run_with_tty_stderr(["run", path], home, tmp_path)
    assert rc == 0, err[-2000:]
    for label in ("train", "calibrate int8", "deploy int8", "benchmark int8"):
        # a benchmark draws one bar per session ("benchmark int8 session 1/3")
        assert re.search(rf"^{label}(?: session \d+/\d+)?\s+━+.*\d+/\d+", err, re.M), (label, err[-3000:])
    assert re.search(r"^calibrate int8\s+━+\s+50/50", err, re.M)

    # --json on a terminal: stdout is one JSON document and no bar is drawn
    rc, out, err = _run_with_tty_stderr(["run", path, "--json", "--force"], home, tmp_path)
    assert rc == 0, err[-2000:]
    assert json.loads(out)["status"] == "ok"
    assert "━" not in err and "━" not in out

    # piped stderr (a CI log): plain log lines, no bars
    r = edgeq("run", path, "--force")
    assert r.code == 0 and "━" not in r.stderr and "train epoch" in r.stderr
