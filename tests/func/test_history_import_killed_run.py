"""`edgeq history --import` of a run whose manifest still says `running`: if its process is gone (killed: the
pid is free, or now belongs to a process started after the run) the run is recorded as `interrupted` with what
finished; if the process may still be running it is skipped as before. A real `edgeq run` killed with SIGKILL
mid-validation (after quantizing), real processes for the live and reused pids."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from edgeq.testing.common import TINY
from edgeq.testing.promfarm import synthetic_manifest

REPO = Path(__file__).resolve().parents[2]


def _kill_run_at(tmp_path: Path, home: Path, marker: str) -> Path:
    """`edgeq run`, SIGKILLed (no handler runs, nothing is cleaned up) once `marker` is on stderr: its run folder."""
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(yaml.safe_dump(TINY, sort_keys=False))
    env = {**os.environ, "EDGEQ_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    p = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "edgeq", "run", str(pipe)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    assert p.stderr is not None
    seen = []
    for line in p.stderr:
        seen.append(line)
        if marker in line:
            p.send_signal(signal.SIGKILL)
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL, "".join(seen)
    (run_dir,) = (home / "runs").iterdir()
    return run_dir


def test_import_of_a_killed_run_records_it_as_interrupted(tmp_path, edgeq, home):
    run_dir = _kill_run_at(tmp_path, home, "validate int8: running")
    before = (run_dir / "manifest.json").read_bytes()
    m = json.loads(before)
    assert m["status"] == "running" and isinstance(m.get("pid"), int), m  # what a killed run leaves
    quantized = {k for k, v in m["variants"].items() if v.get("size_bytes")}
    assert quantized == {"fp32", "int8"}, m["variants"]  # quantized before the kill, not yet validated
    db = tmp_path / "h.db"

    r = edgeq("history", "--import", run_dir, "--db", db, "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["imported"]["recorded"] == [m["run_id"]] and doc["imported"]["skipped"] == [], doc["imported"]
    (row,) = doc["runs"]
    assert row["run_id"] == m["run_id"] and row["status"] == "interrupted", row
    assert f"pid {m['pid']}" in (row.get("error") or ""), row
    assert (run_dir / "manifest.json").read_bytes() == before  # the run folder is only read
    r = edgeq("history", "--import", run_dir, "--db", db)  # the line says what happened
    assert r.code == 0 and f"{m['run_id']}: its process (pid {m['pid']}) is gone" in r.stderr, r.stderr
    c = sqlite3.connect(str(db))
    try:
        vals = dict(c.execute("SELECT variant, sha256 FROM validations WHERE run_id = ?", (m["run_id"],)).fetchall())
    finally:
        c.close()
    assert vals == {k: m["variants"][k]["sha256"] for k in quantized}, vals  # what finished is stored


def _running(tmp_path: Path, name: str, pid: int, started: datetime) -> Path:
    d = tmp_path / "runs" / name
    d.mkdir(parents=True)
    doc = {**synthetic_manifest(name, status="running", started=started.isoformat(timespec="seconds")), "pid": pid}
    (d / "manifest.json").write_text(json.dumps(doc))
    return d


def test_live_or_reused_pids(tmp_path, edgeq):
    now = datetime.now(UTC)
    live = _running(tmp_path, "live", os.getpid(), now)  # this test's own process: started before, still running
    newer = subprocess.Popen(["sleep", "60"])  # noqa: S603,S607 - a process started after the run below
    ended = subprocess.Popen(["true"])  # noqa: S603,S607 - exits at once, not reaped until the end: a zombie
    try:
        time.sleep(0.3)
        reused = _running(tmp_path, "reused", newer.pid, now - timedelta(hours=1))
        _running(tmp_path, "zombie", ended.pid, datetime.now(UTC) + timedelta(seconds=1))
        db = tmp_path / "h.db"
        r = edgeq("history", "--import", tmp_path / "runs", "--db", db, "--json")
        assert r.code == 0, r.stderr
        doc = r.json()
        assert doc["imported"]["recorded"] == ["reused", "zombie"], doc["imported"]
        whys = {x["run_id"]: x["reason"] for x in doc["imported"]["interrupted"]}
        assert "reused by a later process" in whys["reused"] and "(exited)" in whys["zombie"], whys
        (skip,) = doc["imported"]["skipped"]
        assert skip["path"] == str(live / "manifest.json") and "still running" in skip["reason"], skip
        assert {x["run_id"]: x["status"] for x in doc["runs"]} == {"reused": "interrupted", "zombie": "interrupted"}
        assert reused.exists()
    finally:
        newer.kill()
        newer.wait()
        ended.wait()
