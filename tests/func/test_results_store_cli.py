"""The results history through the CLI and from concurrent processes: locks, corruption, filters, import."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from edgeq.errors import StoreError
from edgeq.results import load_manifest, record_run
from edgeq.testing.common import REPO, assert_clean_error
from edgeq.testing.common import history_counts as _counts
from edgeq.testing.promfarm import synthetic_manifest

WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    from edgeq.results import load_manifest, record_run
    from edgeq.testing.promfarm import synthetic_manifest
    who, db, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    runs = [synthetic_manifest(f"{{who}}-{{i}}", n=2000, seed=i, started=f"2026-01-01T00:{{i:02d}}:00+00:00")
            for i in range(12)]
    while time.time() < start:
        time.sleep(0.001)
    for m in runs:
        record_run(load_manifest(m), db)
    print("ok")
""")


def test_processes_writing_at_once_all_succeed(tmp_path):
    db = tmp_path / "h.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO)))
    start = time.time() + 3.0  # every writer has built its manifests and starts on the same instant
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), f"w{k}", str(db), str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for k in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=False):
        assert p.returncode == 0 and out.strip() == "ok", err
    assert _counts(db) == {"runs": 36, "validations": 72, "benchmarks": 144, "benchmark_samples": 144, "stages": 180}
    c = sqlite3.connect(str(db))
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    c.close()


LOCKER = textwrap.dedent("""
    import sqlite3, sys, time
    c = sqlite3.connect(sys.argv[1], isolation_level=None)
    c.execute("BEGIN EXCLUSIVE")
    c.execute("INSERT INTO schema_version VALUES (1)")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    c.execute("ROLLBACK")
""")


def test_locked_database_is_a_store_error(tmp_path, edgeq, home):
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("r1")), db)
    run_dir = tmp_path / "runs" / "r2"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps(synthetic_manifest("r2")))
    holder = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), "20"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t = time.monotonic()
        r = edgeq("history", "--import", run_dir, "--db", db, env={"EDGEQ_HISTORY_TIMEOUT": "1"})
        assert time.monotonic() - t < 15
        assert_clean_error(r, 10, f"history database {db} is locked", "EDGEQ_HISTORY_TIMEOUT")
        r = edgeq("history", "--db", db, "--json")  # WAL: readers are not blocked by a writer
        assert r.code == 0 and [x["run_id"] for x in r.json()["runs"]] == ["r1"]
    finally:
        holder.kill()
        holder.wait()
    r = edgeq("history", "--import", run_dir, "--db", db, "--json")
    assert r.code == 0 and r.json()["imported"]["recorded"] == ["r2"]


def test_corrupt_database_is_a_store_error(tmp_path, edgeq):
    db = tmp_path / "h.db"
    db.write_bytes(b"this is not a database, it is a note left here by mistake\n" * 200)
    r = edgeq("history", "--db", db)
    assert_clean_error(r, 10, f"history database {db} is corrupt", "move it aside", "edgeq history --import")
    with pytest.raises(StoreError, match="corrupt"):
        record_run(load_manifest(synthetic_manifest("r1")), db)
    # a truncated real database: header intact, pages gone
    good = tmp_path / "good.db"
    record_run(load_manifest(synthetic_manifest("r1", n=5000)), good)
    c = sqlite3.connect(str(good))
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    data = good.read_bytes()
    good.write_bytes(data[:4096] + b"\x00" * 4096 + data[8192:12288])
    r = edgeq("history", "--db", good)
    assert r.code == 10 and "Traceback" not in r.stderr and str(good) in r.stderr, r.stderr


def test_missing_history_and_unknown_run(tmp_path, edgeq):
    r = edgeq("history", "--db", tmp_path / "none.db")
    assert_clean_error(r, 10, "no results history at", "edgeq run")
    assert not (tmp_path / "none.db").exists()  # reading never creates the file
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("20260101T023000Z-aaaaaa")), db)
    r = edgeq("compare", "20260101T023000Z-aaaaaa", "nope-123", "--db", db)
    assert_clean_error(r, 10, "unknown run 'nope-123'")
    r = edgeq("report", "nope-123", "--db", db)
    assert_clean_error(r, 10, "unknown run 'nope-123'")


def test_history_cli_filters_and_json(tmp_path, edgeq):
    db = tmp_path / "h.db"
    for i in range(5):
        record_run(
            load_manifest(synthetic_manifest(f"a{i}", pipeline="alpha", started=f"2026-01-0{i + 1}T02:30:00+00:00", n=20)), db
        )
    record_run(
        load_manifest(synthetic_manifest("b0", pipeline="beta", devices=("jetson",), started="2026-01-09T02:30:00+00:00", n=20)),
        db,
    )
    r = edgeq("history", "--db", db, "--json")
    assert r.code == 0
    assert [x["run_id"] for x in r.json()["runs"]] == ["b0", "a4", "a3", "a2", "a1", "a0"]
    assert "samples_s" not in r.json()["runs"][0]["benchmarks"][0]
    r = edgeq("history", "--db", db, "--pipeline", "alpha", "--limit", "2", "--json")
    assert [x["run_id"] for x in r.json()["runs"]] == ["a4", "a3"]
    r = edgeq("history", "--db", db, "--device", "jetson", "--json")
    assert [x["run_id"] for x in r.json()["runs"]] == ["b0"] and {b["device"] for b in r.json()["runs"][0]["benchmarks"]} == {
        "jetson"
    }
    r = edgeq("history", "--db", db)
    assert r.code == 0 and "a4" in r.stdout and "pi5/int8/t1" in r.stdout
    # EDGEQ_HISTORY_DB is the default database
    r = edgeq("history", "--json", env={"EDGEQ_HISTORY_DB": str(db)})
    assert r.code == 0 and r.json()["db"] == str(db)


def test_history_import_of_run_folders(tmp_path, edgeq):
    runs = tmp_path / "runs"
    for i, status in enumerate(["ok", "gate_failed", "running"]):
        d = runs / f"r{i}"
        d.mkdir(parents=True)
        (d / "manifest.json").write_text(json.dumps(synthetic_manifest(f"r{i}", status=status, n=10)))
    db = tmp_path / "h.db"
    r = edgeq("history", "--import", runs, "--db", db, "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert sorted(doc["imported"]["recorded"]) == ["r0", "r1"] and len(doc["imported"]["skipped"]) == 1
    assert {x["run_id"]: x["status"] for x in doc["runs"]} == {"r0": "ok", "r1": "gate_failed"}
