"""The results history: real SQLite files, real concurrent processes, the real CLI."""

from __future__ import annotations

import json
import sqlite3

import pytest

from edgeq.errors import StoreError
from edgeq.results import load_manifest, open_for_reading, query, record_run
from edgeq.testing.common import history_counts as _counts
from edgeq.testing.promfarm import synthetic_manifest


def test_record_run_stores_everything_and_is_idempotent(tmp_path):
    db = tmp_path / "h.db"
    m = synthetic_manifest("r1", n=300)
    record_run(load_manifest(m), db)
    first = _counts(db)
    assert first == {"runs": 1, "validations": 2, "benchmarks": 4, "benchmark_samples": 4, "stages": 5}
    record_run(load_manifest(m), db)  # recording the same run again replaces it
    assert _counts(db) == first
    with open_for_reading(db) as h:
        run = query.load(h, query.resolve(h, "r1"), samples=True)
        assert h.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert h.conn.execute("SELECT version FROM schema_version").fetchall() == [(8,)]
    assert run.pipeline == "synth" and run.pipeline_sha256 == "a" * 64 and run.versions["tensorflow"] == "2.21.0"
    b = next(x for x in run.benchmarks if x.device == "pi5" and x.variant == "int8")
    raw = next(x for x in m["benchmarks"] if x["device"] == "pi5" and x["variant"] == "int8")
    assert len(b.samples_s) == 300
    assert b.samples_s == pytest.approx(raw["raw"]["samples_s"], rel=1e-6)  # float32 keeps 7 digits
    assert b.p50_s == pytest.approx(raw["latency_ms"]["p50"] / 1e3)
    assert b.board_model.startswith("Raspberry Pi 5") and b.board.kernel == "6.6.51"
    assert b.energy_j == pytest.approx(raw["power"]["joules_per_inference"]) and b.power_mean_w == 5.0
    assert run.validations["int8"].accuracy_drop_budget == 0.02
    assert run.validations["int8"].accuracy_drop == pytest.approx(0.005)


def test_record_run_reads_manifest_files_and_raw_sample_files(tmp_path):
    db = tmp_path / "h.db"
    m = synthetic_manifest("r-file", devices=("pi5",), variants=("int8",), n=50)
    run_dir = tmp_path / "runs" / "r-file"
    (run_dir / "bench").mkdir(parents=True)
    raw = run_dir / "bench" / "pi5-int8-t1.json"
    raw.write_text(json.dumps({**m["benchmarks"][0]["raw"], "samples_stride": 3}))
    m["benchmarks"][0]["raw"] = str(raw)
    (run_dir / "manifest.json").write_text(json.dumps(m))
    record_run(load_manifest(run_dir), db)  # a run folder
    with open_for_reading(db) as h:
        b = query.benchmarks(h, "r-file", samples=True)[0]
    assert len(b.samples_s) == 50 and b.samples_stride == 3 and b.raw_path == str(raw)
    raw.unlink()  # a pruned run folder: the summary is still recorded, without samples
    record_run(load_manifest(run_dir / "manifest.json"), db)
    with open_for_reading(db) as h:
        b = query.benchmarks(h, "r-file", samples=True)[0]
    assert b.samples_s == () and b.p50_s > 0


def test_running_or_bogus_manifests_are_refused(tmp_path):
    with pytest.raises(StoreError, match="still running"):
        record_run(load_manifest({**synthetic_manifest("r"), "status": "running"}), tmp_path / "h.db")
    bad = tmp_path / "m.json"
    bad.write_text("{}")
    with pytest.raises(StoreError, match="not an edgeq run manifest"):
        record_run(load_manifest(bad), tmp_path / "h.db")
    with pytest.raises(StoreError, match="no run manifest"):
        record_run(load_manifest(tmp_path / "nope"), tmp_path / "h.db")
    wrong = synthetic_manifest("r", n=10)
    wrong["benchmarks"][1]["threads"] = "two"
    bad.write_text(json.dumps(wrong))
    with pytest.raises(StoreError, match=rf"run manifest {bad} has a bad field 'benchmarks.1.threads'"):
        record_run(load_manifest(bad), tmp_path / "h.db")
    del wrong["stages"]
    bad.write_text(json.dumps(wrong))
    with pytest.raises(StoreError, match=rf"run manifest {bad} has a bad field 'stages'"):
        record_run(load_manifest(bad), tmp_path / "h.db")
    assert not (tmp_path / "h.db").exists()  # refused before the database was touched


def test_newer_schema_is_refused(tmp_path):
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("r1")), db)
    c = sqlite3.connect(str(db))
    c.execute("UPDATE schema_version SET version = 99")
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="schema version 99"):
        open_for_reading(db)


def test_a_write_failing_half_way_leaves_the_previous_state(tmp_path):
    db = tmp_path / "h.db"
    good = synthetic_manifest("r1", n=20)
    record_run(load_manifest(good), db)
    before = _counts(db)
    bad = synthetic_manifest("r1", n=20, devices=("pi5", "pi4", "pi3"))
    c = sqlite3.connect(str(db))  # the last insert of the transaction fails (a manifest's shape is checked before)
    c.execute(
        "CREATE TRIGGER no_pi3 BEFORE INSERT ON benchmarks WHEN NEW.device = 'pi3' BEGIN SELECT RAISE(ABORT, 'no pi3'); END"
    )
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="no pi3"):
        record_run(load_manifest(bad), db)
    assert _counts(db) == before  # the run's old rows are back: its DELETE was rolled back with the rest
    with open_for_reading(db) as h:
        assert {b.device for b in query.benchmarks(h, "r1")} == {"pi5", "pi4"}


def test_version_1_database_is_upgraded_in_place_keeping_every_result(tmp_path):
    """A history written by the previous schema (no validations.quality) gains the column; old rows stay."""
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("old")), db)
    c = sqlite3.connect(str(db))
    c.execute("ALTER TABLE validations DROP COLUMN quality")  # what a version-1 database looks like
    c.execute("ALTER TABLE runs DROP COLUMN adhoc")
    c.execute("UPDATE schema_version SET version = 1")
    c.commit()
    c.close()
    m = synthetic_manifest("new")
    v = next(iter(m["variants"].values()))
    v["mixed_precision"] = {
        "met": True,
        "budget": 0.005,
        "int8_op_fraction": 0.9,
        "float_layers": [{"layer": "dense_2", "op": "FULLY_CONNECTED", "tensor": "t"}],
    }
    record_run(load_manifest(m), db)
    with open_for_reading(db) as h:
        assert h.conn.execute("SELECT version FROM schema_version").fetchall() == [(8,)]
        assert query.resolve(h, "old").adhoc is None  # a pipeline run: not ad hoc, and its JSON as before
        old = query.load(h, query.resolve(h, "old"))
        new = query.load(h, query.resolve(h, "new"))
    assert len(old.validations) == 2 and all(x.quality.to_json() == {} for x in old.validations.values())
    q = next(iter(new.validations.values())).quality
    assert q.mixed_precision.float_layers == ("dense_2",) and q.mixed_precision.met is True
