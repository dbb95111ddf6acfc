"""`compare` on sessions, over runs stored in a real SQLite history (edgeq.results.record_run).

The session-level rule: a regression needs the p50 ratio over the threshold AND the bootstrap interval of
the ratio of session medians excluding 1; Mann-Whitney on the raw samples stays as a side column, and
decides only for results stored before sessions existed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeq.cli import tables
from edgeq.results import compare_runs, load_manifest, record_run
from edgeq.results.stats import ratio_ci, session_figures, summarize_sessions
from edgeq.testing.promfarm import synthetic_manifest


def _with_sessions(m: dict, factors: dict[tuple[str, str], list[float]], seed: int, n: int = 400) -> dict:
    """Every benchmark row of a synthetic manifest as K sessions: session i runs at p50 x factors[i] (x ~1 % of
    session-to-session jitter), its samples lognormal around that, pooled in the raw samples."""
    rng = np.random.default_rng(seed)
    for b in m["benchmarks"]:
        if not b["ok"]:
            continue
        p50 = b["latency_ms"]["p50"] / 1e3
        per = [
            p50 * f * (1 + rng.normal(0, 0.01)) * np.exp(rng.normal(0, 0.05, n))
            for f in factors.get((b["device"], b["variant"]), [1.0] * 3)
        ]
        figs = [session_figures(s) for s in per]
        pooled = np.concatenate(per)
        s = summarize_sessions(figs, pooled)
        b["latency_ms"] = {k: getattr(s, k) * 1e3 for k in ("p50", "p90", "p99", "mean", "std", "min", "max")}
        b["count"] = s.count
        b["sessions"] = [
            {"session": i + 1, "p50": f.p50 * 1e3, "p90": f.p90 * 1e3, "p99": f.p99 * 1e3, "mean": f.mean * 1e3, "count": f.count}
            for i, f in enumerate(figs)
        ]
        b["spread"], b["spread_std_ms"] = s.spread, s.spread_std * 1e3
        b["ci_ms"] = {"low": s.ci_low * 1e3, "high": s.ci_high * 1e3}
        b["harness_floor_ms"] = 0.0008
        b["raw"] = {"samples_s": [float(x) for x in pooled], "samples_stride": 1}
    return m


def _runs(tmp_path, base: dict, cand: dict):
    db = tmp_path / "history.db"
    record_run(load_manifest(base), db)
    record_run(load_manifest(cand), db)
    return db


KEY = ("pi5", "int8")
ONE = {"devices": ("pi5",), "variants": ("int8",)}


def test_one_drifted_session_on_an_unchanged_artifact_is_no_regression(tmp_path):
    base = _with_sessions(synthetic_manifest("b", **ONE), {}, seed=1)
    cand = synthetic_manifest("c", started="2026-01-02T02:30:00+00:00", **ONE)
    cand = _with_sessions(cand, {KEY: [1.0, 1.2, 1.0]}, seed=2)  # the board slowed 20 % during one session
    c = compare_runs("b", "c", db_path=_runs(tmp_path, base, cand))
    row = c.latency[0]
    assert row.test == "sessions" and (row.sessions_base, row.sessions_candidate) == (3, 3)
    assert row.ratio == pytest.approx(1.0, abs=0.05)
    assert row.ratio_ci_low <= 1.0 <= row.ratio_ci_high
    assert row.p_value < 1e-6  # the raw-sample test alone would call the drift significant
    assert not row.regression and not c.regressed


def test_a_really_slower_candidate_is_a_regression_on_sessions(tmp_path):
    base = _with_sessions(synthetic_manifest("b", **ONE), {}, seed=3)
    cand = _with_sessions(synthetic_manifest("c", started="2026-01-02T02:30:00+00:00", **ONE), {KEY: [1.15] * 3}, seed=4)
    db = _runs(tmp_path, base, cand)
    c = compare_runs("b", "c", db_path=db)
    row = c.latency[0]
    assert row.regression and row.verdict == "regression" and row.ratio == pytest.approx(1.15, rel=0.03)
    assert row.ratio_ci_low > 1.0 and row.ratio_ci_level == 0.95
    note = next(n for n in c.regressions if n.startswith("latency"))
    assert "session interval of the ratio" in note and "3 vs 3 sessions" in note
    doc = c.to_json()["latency"][0]
    assert doc["test"] == "sessions" and doc["ratio_ci_low"] > 1.0
    title, cols, rows = tables.comparison_tables(c)[0]
    assert "session interval" in title and "ratio CI (sessions)" in cols and rows[0][-1] == "REGRESSION"
    assert rows[0][cols.index("ratio CI (sessions)")].endswith("(3v3)")


def test_a_run_stored_before_sessions_compares_on_raw_samples_and_says_so(tmp_path):
    base = synthetic_manifest("b", **ONE)  # today's manifests: one session, no session data
    cand = _with_sessions(synthetic_manifest("c", started="2026-01-02T02:30:00+00:00", **ONE), {KEY: [1.25] * 3}, seed=5)
    c = compare_runs("b", "c", db_path=_runs(tmp_path, base, cand))
    row = c.latency[0]
    assert row.test == "raw samples" and (row.sessions_base, row.sessions_candidate) == (1, 3)
    assert row.ratio_ci_low is None and row.regression and row.p_value < 0.05  # Mann-Whitney decided
    assert "Mann-Whitney p=" in c.regressions[0]
    _, cols, rows = tables.comparison_tables(c)[0]
    assert rows[0][cols.index("ratio CI (sessions)")] == "one session (1v3): p decides"


def test_runs_without_sessions_keep_todays_document(tmp_path):
    base = synthetic_manifest("b", **ONE)
    cand = synthetic_manifest("c", started="2026-01-02T02:30:00+00:00", **ONE)
    c = compare_runs("b", "c", db_path=_runs(tmp_path, base, cand))
    doc = c.to_json()["latency"][0]
    assert "test" not in doc and "ratio_ci_low" not in doc and "base_source" not in doc
    assert "drift" not in c.to_json()  # no rerun baseline: the document has no drift section
    _, cols, rows = tables.comparison_tables(c)[0]
    assert rows[0][cols.index("ratio CI (sessions)")] == "no sessions stored: p decides"


def test_history_keeps_sessions_spread_interval_and_floor(tmp_path):
    from edgeq import metrics
    from edgeq.results import query

    base = _with_sessions(synthetic_manifest("b", **ONE), {}, seed=6)
    db = tmp_path / "history.db"
    record_run(load_manifest(base), db)
    with query.open_for_reading(db) as h:
        (b,) = query.load(h, query.resolve(h, "b"), samples=True).benchmarks
    assert b.sessions == 3 and len(b.per_session) == 3 and [s.session for s in b.per_session] == [1, 2, 3]
    assert b.p50_s == pytest.approx(float(np.median(b.session_p50s)))
    assert b.ci_low_s <= b.p50_s <= b.ci_high_s and b.spread >= 0 and b.harness_floor_s == pytest.approx(0.8e-6)
    assert len(b.samples_s) == 1200
    text = metrics.exposition(metrics.registry_for(metrics.latest_families(db))).decode()
    for name in ("edgeq_benchmark_sessions", "edgeq_latency_session_spread_ratio", "edgeq_latency_p50_ci_lower_seconds"):
        assert f"{name}{{" in text
    assert "edgeq_harness_floor_seconds{" in text and "session=" not in text and "run_id" not in text


def test_an_older_history_gains_sessions_and_its_runs_compare_with_new_ones(tmp_path):
    import shutil
    import sqlite3
    from pathlib import Path

    from edgeq.results import query

    db = tmp_path / "history.db"
    shutil.copyfile(Path(__file__).resolve().parents[1] / "data" / "history-main.db", db)  # schema 2, no sessions
    new = synthetic_manifest("20260104T023000Z-444444", started="2026-01-04T02:30:00+00:00", threads=(1, 2))
    record_run(load_manifest(_with_sessions(new, {}, seed=8)), db)
    c = sqlite3.connect(str(db))
    assert c.execute("SELECT version FROM schema_version").fetchall() == [(8,)]
    assert c.execute("SELECT count(*) FROM benchmark_sessions").fetchone()[0] == 8 * 3
    c.close()
    with query.open_for_reading(db) as h:
        old = query.load(h, query.resolve(h, "20260102T023000Z-222222"))
    assert all(b.sessions is None and b.per_session is None for b in old.benchmarks)
    cmp = compare_runs("20260102T023000Z-222222", "20260104T023000Z-444444", db_path=db)
    assert {x.test for x in cmp.latency} == {"raw samples"}  # the old side has one session: Mann-Whitney decides


def _rerun(m: dict, factors: dict, seed: int) -> dict:
    """Add "<variant>@baseline" rows (the base artifact re-measured in this run) beside every benchmark row."""
    extra = []
    for b in m["benchmarks"]:
        r = json.loads(json.dumps(b))
        r["variant"] = b["variant"] + "@baseline"
        extra.append(r)
    m["benchmarks"] += extra
    return _with_sessions(m, factors, seed)


def test_a_rerun_baseline_tells_a_slower_board_from_a_slower_model(tmp_path):
    base = _with_sessions(synthetic_manifest("b", **ONE), {}, seed=10)
    # tonight the board is 20 % slower for everything: the candidate and the re-measured baseline alike
    slow = {KEY: [1.2] * 3, ("pi5", "int8@baseline"): [1.2] * 3}
    cand = _rerun(synthetic_manifest("c", started="2026-01-02T02:30:00+00:00", **ONE), slow, seed=11)
    db = _runs(tmp_path, base, cand)
    c = compare_runs("b", "c", db_path=db)
    (row,) = c.latency
    assert row.base_source == "rerun" and row.ratio == pytest.approx(1.0, abs=0.05) and not row.regression
    assert not c.regressed and [x.variant for x in c.latency] == ["int8"]  # the rerun rows are not compared as a variant
    (drift,) = c.drift
    assert drift.variant == "int8@baseline" and drift.ratio == pytest.approx(1.2, rel=0.03)
    assert drift.verdict == "slower board/runtime" and not drift.regression
    titles = [t[0] for t in tables.comparison_tables(c)]
    assert any(t.startswith("board/runtime drift") for t in titles) and "* base re-measured" in titles[0]

    # a model really 15 % slower than the baseline re-measured beside it is a regression, whatever the board did
    cand2 = _rerun(synthetic_manifest("d", started="2026-01-03T02:30:00+00:00", **ONE), {KEY: [1.15] * 3}, seed=12)
    record_run(load_manifest(cand2), db)
    c2 = compare_runs("b", "d", db_path=db)
    assert c2.latency[0].regression and c2.latency[0].base_source == "rerun"
    assert "re-measured in this run" in next(n for n in c2.regressions if n.startswith("latency"))
    assert c.to_json()["drift"][0]["variant"] == "int8@baseline"


def test_last_good_finds_the_changed_artifacts_of_the_last_successful_run(tmp_path):
    from edgeq.hashing import file_sha256
    from edgeq.results.baseline import last_good

    arts = {}
    for v in ("fp32", "int8"):
        p = tmp_path / f"{v}.tflite"
        p.write_bytes(v.encode() * 10)
        arts[v] = p
    m = synthetic_manifest("b", devices=("pi5",))
    for v, p in arts.items():
        m["variants"][v].update(artifact=str(p), sha256=file_sha256(p))
    run_dir = tmp_path / "runs" / "b"
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps(m))
    db = tmp_path / "history.db"
    record_run(load_manifest(run_dir), db)
    found = last_good("synth", {"fp32": file_sha256(arts["fp32"]), "int8": "1" * 64}, db_path=db)
    assert found.run_id == "b" and [(a.variant, a.artifact) for a in found.artifacts] == [("int8", str(arts["int8"]))]
    assert any("fp32: unchanged" in n for n in found.notes)
    arts["int8"].write_bytes(b"changed")
    assert last_good("synth", {"int8": "1" * 64}, db_path=db).artifacts == ()
    assert last_good("other", {"int8": "1" * 64}, db_path=db).notes[0].startswith("no successful run")
    assert last_good("synth", {}, db_path=tmp_path / "none.db").notes == ("no history yet: nothing to re-measure",)


def test_a_rerun_baseline_is_compared_pair_by_pair_so_load_that_moves_between_sessions_cancels(tmp_path):
    base = _with_sessions(synthetic_manifest("b", **ONE), {}, seed=20)
    load = [1.0, 1.25, 0.85]  # other load on the board, session by session: it hits both members of a pair
    slower = {KEY: [1.15 * f for f in load], ("pi5", "int8@baseline"): load}
    cand = _rerun(synthetic_manifest("c", started="2026-01-02T02:30:00+00:00", **ONE), slower, seed=21)
    db = _runs(tmp_path, base, cand)
    (row,) = compare_runs("b", "c", db_path=db).latency
    assert row.test == "paired sessions" and row.base_source == "rerun"
    assert row.ratio_ci_low > 1.1 and row.regression  # unpaired, the sessions' spread would hide 15 %
    assert ratio_ci(load, [1.15 * f for f in load])[0] < 1.0  # the same medians as two unpaired sides
    assert tables.comparison_tables(compare_runs("b", "c", db_path=db))[0][2][0][7].endswith("(3v3 paired)")

    # drift in one candidate session of an unchanged artifact: no regression
    drift = {KEY: [1.0, 1.3, 1.0], ("pi5", "int8@baseline"): [1.0, 1.0, 1.0]}
    cand2 = _rerun(synthetic_manifest("d", started="2026-01-03T02:30:00+00:00", **ONE), drift, seed=22)
    record_run(load_manifest(cand2), db)
    (row2,) = compare_runs("b", "d", db_path=db).latency
    assert row2.test == "paired sessions" and not row2.regression
