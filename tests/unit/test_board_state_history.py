"""Board-state flags through the history (schema 4, older databases upgraded), Prometheus, the report and compare."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from edgeq import metrics
from edgeq.cli import tables
from edgeq.report.html import render_html
from edgeq.results import compare_runs, load_manifest, query, record_run
from edgeq.testing.promfarm import synthetic_manifest

ONE = {"devices": ("pi5",), "variants": ("int8",)}


def _flagged(m: dict, flags: list[str]) -> dict:
    for b in m["benchmarks"]:
        b["flags"] = flags
        b["trend"] = 1.04
        b["temp_max_c"] = 81.5
        b["trajectory_ms"] = [{"window": 0, "p50": 0.5, "count": 10}, {"window": 1, "p50": 0.55, "count": 9}]
        b["sessions"] = [{"session": 1, "p50": 0.5, "p90": 0.6, "p99": 0.7, "mean": 0.5, "count": 19, "flags": flags}]
    return m


def test_flags_are_stored_exported_reported_and_noted_by_compare(tmp_path):
    db = tmp_path / "history.db"
    record_run(load_manifest(_flagged(synthetic_manifest("b", **ONE), [])), db)
    record_run(
        load_manifest(_flagged(synthetic_manifest("c", started="2026-01-02T02:30:00+00:00", **ONE), ["foreign_load", "hot"])), db
    )
    with query.open_for_reading(db) as h:
        run = query.load(h, query.resolve(h, "c"))
    (b,) = run.benchmarks
    assert b.flags == ("foreign_load", "hot") and b.trend == 1.04 and b.state_temp_max_c == 81.5
    assert b.trajectory_s == (0.0005, 0.00055) and b.session_state[0]["flags"] == ["foreign_load", "hot"]
    assert b.to_json()["flags"] == ["foreign_load", "hot"]

    text = metrics.exposition(metrics.registry_for(metrics.latest_families(db))).decode()
    assert 'edgeq_bench_flagged{arch="aarch64",device="pi5",flag="hot"' in text.replace('pipeline="synth",', "")
    lines = [x for x in text.splitlines() if x.startswith("edgeq_bench_flagged{")]
    assert len(lines) == 6 and sum(float(x.rsplit(" ", 1)[1]) for x in lines) == 2.0  # every flag, 0 or 1
    assert "session=" not in text and "run_id" not in text
    assert "edgeq_latency_trend_ratio{" in text and "edgeq_board_temp_celsius{" in text

    html = render_html(run, [run], None)
    assert "⚠ foreign_load, hot (82 °C)" in html

    cmp = compare_runs("b", "c", db_path=db)
    assert cmp.state_notes is not None and len(cmp.state_notes) == 1
    assert "candidate flagged foreign_load, hot" in cmp.state_notes[0]
    assert any("read this ratio with care" in n for n in tables.comparison_notes(cmp))
    assert "⚠ note: int8 on pi5 (1 threads): candidate flagged foreign_load, hot" in render_html(run, [run], cmp)


def test_an_older_history_is_upgraded_and_its_rows_have_no_board_state(tmp_path):
    db = tmp_path / "history.db"
    shutil.copyfile(Path(__file__).resolve().parents[1] / "data" / "history-main.db", db)
    record_run(
        load_manifest(
            _flagged(synthetic_manifest("20260104T023000Z-444444", started="2026-01-04T02:30:00+00:00", **ONE), ["hot"])
        ),
        db,
    )
    c = sqlite3.connect(str(db))
    assert c.execute("SELECT version FROM schema_version").fetchall() == [(8,)]
    assert c.execute("SELECT flags FROM benchmark_state").fetchall() == [('["hot"]',)]
    c.close()
    with query.open_for_reading(db) as h:
        old = query.load(h, query.resolve(h, "20260102T023000Z-222222"))
    assert old.benchmarks and all(b.flags is None and "flags" not in b.to_json() for b in old.benchmarks)
    cmp = compare_runs("20260102T023000Z-222222", "20260104T023000Z-444444", db_path=db)
    assert cmp.state_notes and "candidate flagged hot" in cmp.state_notes[0]


def test_a_version_4_history_gains_the_board_state_table(tmp_path):
    db = tmp_path / "history.db"
    record_run(load_manifest(synthetic_manifest("old", **ONE)), db)
    c = sqlite3.connect(str(db))
    c.execute("DROP TABLE benchmark_state")  # what a version-4 database (numeric checks, no board state) looks like
    c.execute("UPDATE schema_version SET version = 4")
    c.commit()
    c.close()
    record_run(load_manifest(_flagged(synthetic_manifest("new", started="2026-01-02T02:30:00+00:00", **ONE), ["throttled"])), db)
    with query.open_for_reading(db) as h:
        assert h.conn.execute("SELECT version FROM schema_version").fetchall() == [(8,)]
        assert [b.flags for b in query.load(h, query.resolve(h, "new")).benchmarks] == [("throttled",)]
        assert [b.flags for b in query.load(h, query.resolve(h, "old")).benchmarks] == [None]
