"""A board whose clock runs a day ahead (no RTC and no NTP yet, as on a Pi in an offline lab), simulated on the local
board with libfaketime (Debian package faketime): the board's python is a wrapper running `faketime -f +1d`.

edgeq records host time for each session and says the offset in `devices check` and in the bench result."""

from __future__ import annotations

import base64
import calendar
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from edgeq.fleet.setup.scripts import TINY_MODEL_B64

DAY = 86400.0


def _faketime() -> str:
    exe = shutil.which("faketime")
    if exe is None:
        pytest.fail("faketime is not installed: apt-get install -y faketime (Debian package, libfaketime)", pytrace=False)
    return exe


def _devices(tmp_path: Path, python: str) -> Path:
    p = tmp_path / "devices.yaml"
    p.write_text(
        "devices:\n"
        f'  - {{"name": "ahead", "transport": "local", "workdir": "{tmp_path / "w"}", "python": "{python}", "tags": ["lab"]}}\n'
    )
    return p


@pytest.fixture
def day_ahead(tmp_path) -> Path:
    """devices.yaml of a local board whose python sees a clock one day ahead of this host's."""
    wrapper = tmp_path / "python-day-ahead"
    wrapper.write_text(f'#!/bin/sh\nexec {_faketime()} -f "+1d" {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return _devices(tmp_path, str(wrapper))


def _epoch(iso: str) -> float:
    return float(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")))


def test_faketime_moves_the_boards_clock(day_ahead, tmp_path):
    """The premise: the wrapper's python really reads a clock a day ahead."""
    import subprocess

    wrapper = tmp_path / "python-day-ahead"
    out = subprocess.run([str(wrapper), "-c", "import time; print(time.time())"], capture_output=True, text=True, check=True)
    assert abs(float(out.stdout) - time.time() - DAY) < 60


def test_devices_check_notes_the_clock_offset(edgeq, day_ahead):
    r = edgeq("devices", "check", "--devices", day_ahead, "--json")
    assert r.code == 0, r.stderr  # a wrong clock is worth a note, not a failed board
    (rec,) = r.json()["devices"]
    assert rec["healthy"] is True
    assert abs(rec["clock_offset_s"] - DAY) < 30, rec
    assert any(w.startswith("clock offset +86400 s") for w in rec["warnings"]), rec["warnings"]
    table = edgeq("devices", "check", "--devices", day_ahead)
    assert table.code == 0 and "clock offset +86400 s" in " ".join(table.stdout.split()), table.stdout


def test_devices_check_of_a_board_on_time_says_nothing(edgeq, tmp_path):
    r = edgeq("devices", "check", "--devices", _devices(tmp_path, sys.executable), "--json")
    assert r.code == 0, r.stderr
    (rec,) = r.json()["devices"]
    assert abs(rec["clock_offset_s"]) < 5 and not any("clock" in w for w in rec.get("warnings", ()))


def test_bench_records_host_time_and_notes_the_offset(edgeq, day_ahead, tmp_path):
    model = tmp_path / "tiny.tflite"
    model.write_bytes(base64.b64decode(TINY_MODEL_B64))
    db = tmp_path / "history.db"
    t0 = time.time()
    r = edgeq(
        *("bench", model, "--target", "ahead", "--devices", day_ahead, "--sessions", "2", "--runs", "4"),
        *("--min-seconds", "0", "--warmup", "1", "--db", db, "--json"),
    )
    t1 = time.time()
    assert r.code == 0, r.stderr
    (res,) = r.json()["devices"][0]["results"]
    for s in res["sessions"]:
        assert t0 - 2 <= _epoch(s["started_at"]) <= t1 + 2, (s, t0, t1)  # this host's time, not the board's
        assert abs(s["clock_offset_s"] - DAY) < 30, s
    assert any(n.startswith("clock offset +86400 s") for n in res["notes"]), res["notes"]
    assert "warning: ahead: clock offset +86400 s" in r.stderr
    with sqlite3.connect(db) as c:
        stored = [row[0] for row in c.execute("SELECT started FROM benchmark_sessions ORDER BY session")]
    assert len(stored) == 2 and all(t0 - 2 <= _epoch(s) <= t1 + 2 for s in stored), (stored, t0, t1)
