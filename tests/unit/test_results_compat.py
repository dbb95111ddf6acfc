"""A history written by an earlier edgeq stays readable, and shows the same documents.

tests/data/history-main.db was written by the code of main before results became typed records
(tests/data/build_history_main.py says how); the golden file holds what it showed then.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sqlite3
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
GOLDEN = json.loads((DATA / "history-main.golden.json").read_text())


def _builder():
    spec = importlib.util.spec_from_file_location("build_history_main", DATA / "build_history_main.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _doc(x):
    return x.to_json() if hasattr(x, "to_json") else x


@pytest.fixture
def db(tmp_path):
    db = tmp_path / "history.db"
    shutil.copyfile(DATA / "history-main.db", db)  # opening may add WAL files: never beside the checked-in copy
    return db


def test_history_and_compare_documents_are_unchanged(db, edgeq):
    r = edgeq("history", "--limit", "50", "--db", db, "--json")
    assert r.code == 0, r.stderr
    assert {k: v for k, v in r.json().items() if k != "db"} == GOLDEN["history"]
    r = edgeq("compare", "--pipeline", "synth", "--db", db, "--json")
    assert r.code == 0, r.stderr
    assert r.json() == GOLDEN["compare_latest_synth"]
    r = edgeq("compare", "20260102T023000Z-222222", "20260101T023000Z-111111", "--db", db, "--json")
    assert r.code == 0, r.stderr
    assert r.json() == GOLDEN["compare_named"]


def test_loaded_runs_exposition_and_report_are_unchanged(db):
    from edgeq import metrics
    from edgeq.report.html import render_html
    from edgeq.results import query
    from edgeq.results.compare import compare

    with query.open_for_reading(db) as h:
        ids = sorted(x["run_id"] for x in GOLDEN["history"]["runs"])
        runs = [query.load(h, query.resolve(h, r), samples=True) for r in ids]
        assert [_doc(r) for r in runs] == GOLDEN["loaded_with_samples"]
        synth = [r for r in runs if _doc(r)["pipeline"] == "synth"]
        trend = query.trend(h, "synth", _doc(synth[1])["started_ts"], 10)
        html = render_html(synth[1], trend, compare(synth[0], synth[1]))
        html_real = render_html(runs[-1], [], None)
        html_failed = render_html(next(r for r in runs if _doc(r)["status"] == "failed"), [], None)
    _assert_old_series_unchanged(metrics.exposition(metrics.registry_for(metrics.latest_families(db))).decode())

    def normalize(text: str) -> str:
        # the headline ("ship int8 on these boards?") is new since the golden file: everything else is unchanged
        import re

        text = re.sub(r"\n#headline[^\n<]*", "", text)
        text = re.sub(r"\n<section id='headline'.*?</section>", "", text, flags=re.S)
        return _builder().normalize_html(text)

    assert "<section id='headline'" in html and "Ship" in html or "Hold" in html
    assert normalize(html) == GOLDEN["report_html"]
    assert normalize(html_real) == GOLDEN["report_html_real"]
    assert normalize(html_failed) == GOLDEN["report_html_failed"]
    assert "<script>" not in html_failed and "&lt;script&gt;" in html_failed


def _dump(db: Path) -> dict:
    c = sqlite3.connect(str(db))
    out = {}
    for table, order in (
        ("runs", "run_id"),
        ("stages", "run_id, rowid"),
        ("validations", "run_id, rowid"),
        ("benchmarks", "id"),
        ("benchmark_samples", "benchmark_id"),
    ):
        cur = c.execute(f"SELECT * FROM {table} ORDER BY {order}")  # noqa: S608 - literal table names
        names = [d[0] for d in cur.description]
        # adhoc (schema 4) is new since the golden database: a pipeline run records 0, which it must still do
        out[table] = [
            {k: v for k, v in zip(names, row, strict=True) if k != "recorded_ts" and (k, v) != ("adhoc", 0)} for row in cur
        ]
    c.close()
    return out


def _assert_same_rows(got: dict, want: dict) -> None:
    """Every table, row and column of `want`, in order: floats to 12 significant digits, everything else exactly.

    The statistics (std_s, p90_s, ...) are recomputed by numpy, whose summation order differs between builds
    and CPUs (SIMD width): the same 2.4.6 gave 2.1046582123261925e-05 here and 2.104658212326193e-05 in the
    golden file. A real change in the formula moves a value far more than 1e-12 of itself."""
    assert list(got) == list(want)
    for table, want_rows in want.items():
        got_rows = got[table]
        assert len(got_rows) == len(want_rows), table
        for i, (g, w) in enumerate(zip(got_rows, want_rows, strict=True)):
            where = f"{table}[{i}]"
            assert list(g) == list(w), where  # the same columns in the same order
            for col, wv in w.items():
                gv = g[col]
                assert type(gv) is type(wv), (where, col, gv, wv)
                if isinstance(wv, float):
                    assert math.isclose(gv, wv, rel_tol=1e-12, abs_tol=0.0), (where, col, gv, wv)
                else:
                    assert gv == wv, (where, col, gv, wv)


def test_recording_the_same_manifests_again_writes_the_same_rows(db, tmp_path):
    from edgeq.results import load_manifest, record_run

    again = tmp_path / "again.db"
    for m in _builder().manifests():
        record_run(load_manifest(m), again)
    _assert_same_rows(_dump(again), _dump(db))  # db: the golden database's copy (a checkout may be read-only)


def test_float_columns_are_compared_tightly_and_the_rest_exactly():
    rows = {"benchmarks": [{"id": 1, "std_s": 2.104658212326193e-05, "device": "pi5", "samples": b"\x00"}]}

    def changed(**kw) -> dict:
        return {"benchmarks": [{**rows["benchmarks"][0], **kw}]}

    _assert_same_rows(changed(std_s=2.1046582123261925e-05), rows)  # the last place: numpy builds differ there
    for bad in (
        changed(std_s=2.1046582123e-05),  # 1e-11 relative: a real change
        changed(std_s=None),
        changed(id=2),
        changed(id=1.0),
        changed(device="pi4"),
        changed(samples=b"\x01"),
        {"benchmarks": [{k: v for k, v in rows["benchmarks"][0].items() if k != "device"}]},
        {"benchmarks": []},
    ):
        with pytest.raises(AssertionError):
            _assert_same_rows(bad, rows)


NEW_SINCE_GOLDEN = tuple(f"edgeq_latency_{x}_seconds" for x in ("p50", "p90", "p99", "mean")) + (
    "edgeq_latency_timed_inferences",
)


def _assert_old_series_unchanged(text: str) -> None:
    """Every series the golden file exported is still there with its value and type (old queries keep working);
    the only additions are the latency gauges, and only HELP texts changed (the summary's says DEPRECATED)."""

    def lines(t: str) -> list[str]:
        return [x for x in t.splitlines() if not x.startswith("# HELP")]

    new = lines(text)
    assert [x for x in new if not any(n in x for n in NEW_SINCE_GOLDEN)] == lines(GOLDEN["exposition"])
    assert any(x.startswith("edgeq_latency_p50_seconds{") for x in new)
