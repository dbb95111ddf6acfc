"""`edgeq run` while another process holds the history database locked: the hint says how to store the run
later (`edgeq history --import RUN_DIR`), and the store's exit 10 never hides a gate's 7 or the fleet's 8."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgeq.results import load_manifest, record_run
from edgeq.testing import sshfarm
from edgeq.testing.common import assert_clean_error
from edgeq.testing.promfarm import synthetic_manifest

LOCKER = textwrap.dedent("""
    import sqlite3, sys, time
    c = sqlite3.connect(sys.argv[1], isolation_level=None)
    c.execute("BEGIN EXCLUSIVE")
    c.execute("INSERT INTO schema_version VALUES (1)")
    print("locked", flush=True)
    time.sleep(600)
""")


@pytest.fixture
def locked_history(tmp_path):
    db = tmp_path / "history.db"
    record_run(load_manifest(synthetic_manifest("r0")), db)
    holder = subprocess.Popen([sys.executable, "-c", LOCKER, str(db)], stdout=subprocess.PIPE, text=True)  # noqa: S603
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        yield db
    finally:
        holder.kill()
        holder.wait()


def _run_dir(stderr: str) -> Path:
    line = next(x for x in stderr.splitlines() if "edgeq history --import" in x)
    return Path(line.rsplit("edgeq history --import ", 1)[1].rstrip("`"))


def test_locked_history(edgeq, write_pipeline, tmp_path, locked_history):
    env = {"EDGEQ_HISTORY_DB": str(locked_history), "EDGEQ_HISTORY_TIMEOUT": "0.5"}
    closed = sshfarm.free_port()
    devices = tmp_path / "devices.yaml"
    entry = {"name": "gone", "host": "127.0.0.1", "port": closed, "connect_timeout": 1, "retries": 1, "retry_delay": 0}
    devices.write_text("devices:\n  - " + json.dumps(entry) + "\n")
    runs = {
        "ok": (write_pipeline(name="ok.yaml"), 10),
        "gate": (write_pipeline({"validate": {"gates": {"min_accuracy": 1.0}}}, name="gate.yaml"), 7),
        "fleet": (write_pipeline({"devices": str(devices), "deploy": {"targets": ["gone"]}}, name="fleet.yaml"), 8),
    }
    stored = []
    for what, (pipe, code) in runs.items():
        r = edgeq("run", pipe, env=env)
        assert_clean_error(r, code, f"history database {locked_history} is locked")
        run_dir = _run_dir(r.stderr)
        assert (run_dir / "manifest.json").exists(), (what, r.stderr)
        if code != 10:  # the store problem is still reported, after the run's own outcome
            assert (
                "warning: history database" in r.stderr and ("validation gates failed" if code == 7 else "fleet step") in r.stderr
            )
        stored.append(run_dir)
    assert stored[0] != stored[1]
    # once the lock is gone, the hint's command stores them
    imports = [a for d in stored for a in ("--import", d)]
    r = edgeq("history", *imports, "--db", locked_history.with_name("copy.db"), "--json")
    assert r.code == 0 and len(r.json()["imported"]["recorded"]) == 3, r.stdout


def test_locked_history_json_keeps_the_gate_exit(edgeq, write_pipeline, locked_history):
    env = {"EDGEQ_HISTORY_DB": str(locked_history), "EDGEQ_HISTORY_TIMEOUT": "0.5"}
    r = edgeq("run", write_pipeline({"validate": {"gates": {"min_accuracy": 1.0}}}), "--json", env=env)
    assert r.code == 7, r.stderr
    assert r.json()["status"] == "gate_failed" and "edgeq history --import" in r.stderr
