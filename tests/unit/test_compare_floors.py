"""`compare` on session floors (history schema 7), over runs stored in a real SQLite history.

The rule: a regression needs the floor ratio (the candidate's fastest invoke over its sessions / the baseline's)
over the threshold AND the bootstrap interval of that ratio, sessions resampled on each side, excluding 1. The
p50 ratio stays in the row; a p50 past the threshold with an unchanged floor is "noise".

Sessions are made the way a shared board makes them: a floor (the model's work) times a session factor (a
whole session on a slowed board), plus additive noise (only ever adds time) whose scale sets the median.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from edgeq.cli import tables
from edgeq.results import compare_runs, load_manifest, query, record_run
from edgeq.results.db import open_history
from edgeq.results.stats import floor_ratio_ci, session_figures, summarize_sessions
from edgeq.testing.promfarm import synthetic_manifest

KEY = ("pi5", "int8")
ONE = {"devices": ("pi5",), "variants": ("int8",)}
FLOOR_S = 0.005  # 5 ms of work per invoke


def _sessions(m: dict, slow: list[float], tail: list[float], work: float, seed: int, n: int = 300) -> dict:
    """Every ok benchmark row as len(slow) sessions: session i's samples are FLOOR_S x work x slow[i] x
    (1 + tail[i] x Exp(1)): `work` is the model's, `slow` a whole session on a slowed board, `tail` how much
    time disturbances add (the median is the floor x (1 + tail x ln 2))."""
    rng = np.random.default_rng(seed)
    for b in m["benchmarks"]:
        if not b["ok"]:
            continue
        per = [FLOOR_S * work * s * (1 + t * rng.exponential(1.0, n)) for s, t in zip(slow, tail, strict=True)]
        figs = [session_figures(x) for x in per]
        s = summarize_sessions(figs, np.concatenate(per))
        b["latency_ms"] = {k: getattr(s, k) * 1e3 for k in ("p50", "p90", "p99", "mean", "std", "min", "max")}
        b["count"] = s.count
        b["sessions"] = [
            {"session": i + 1, "p50": f.p50 * 1e3, "p90": f.p90 * 1e3, "p99": f.p99 * 1e3, "mean": f.mean * 1e3}
            | {"count": f.count, "min": float(x.min()) * 1e3}
            for i, (f, x) in enumerate(zip(figs, per, strict=True))
        ]
        b["spread"], b["spread_std_ms"] = s.spread, s.spread_std * 1e3
        b["ci_ms"] = {"low": s.ci_low * 1e3, "high": s.ci_high * 1e3}
        b["raw"] = {"samples_s": [float(x) for x in np.concatenate(per)], "samples_stride": 1}
    return m


def _compare(tmp_path, base: dict, cand: dict):
    db = tmp_path / "history.db"
    record_run(load_manifest(base), db)
    record_run(load_manifest(cand), db)
    return compare_runs("b", "c", db_path=db), db


def _cand() -> dict:
    return synthetic_manifest("c", started="2026-01-02T02:30:00+00:00", **ONE)


def test_session_minima_are_stored_and_read_back(tmp_path):
    base = _sessions(synthetic_manifest("b", **ONE), [1.0, 1.2, 1.0], [0.1] * 3, 1.0, seed=1)
    db = tmp_path / "history.db"
    record_run(load_manifest(base), db)
    with open_history(db) as h:
        row = next(b for b in query.benchmarks(h, "b") if b.ok)
    assert row.session_mins == pytest.approx([s["min"] / 1e3 for s in base["benchmarks"][0]["sessions"]])
    assert sqlite3.connect(db).execute("SELECT version FROM schema_version").fetchall() == [(8,)]


def test_a_slowed_session_and_a_noisy_median_on_an_unchanged_artifact_is_no_regression(tmp_path):
    base = _sessions(synthetic_manifest("b", **ONE), [1.0, 1.0, 1.0], [0.1] * 3, 1.0, seed=2)
    # the board: one session 25 % slow through and through, and every session's median pushed up by extra load
    cand = _sessions(_cand(), [1.0, 1.25, 1.0], [0.4] * 3, 1.0, seed=3)
    c, _ = _compare(tmp_path, base, cand)
    row = c.latency[0]
    assert row.test == "session floors" and (row.sessions_base, row.sessions_candidate) == (3, 3)
    assert row.ratio > 1.15  # the p50 rule alone would be past the threshold
    assert row.floor_ratio == pytest.approx(1.0, abs=0.03)
    assert row.floor_ci_low <= 1.0 + 0.03
    assert not row.regression and row.verdict == "noise" and not c.regressed


def test_a_candidate_doing_15_percent_more_work_is_a_regression_even_on_a_noisy_board(tmp_path):
    # five sessions (the default): two of the baseline's ran on a board slowed all through, the candidate's
    # medians are pushed around by load; the floor still sees x1.15
    base = _sessions(synthetic_manifest("b", **ONE), [1.0, 1.2, 1.0, 1.25, 1.0], [0.3] * 5, 1.0, seed=4)
    cand = _sessions(_cand(), [1.0, 1.0, 1.1, 1.0, 1.0], [0.3, 0.5, 0.3, 0.6, 0.3], 1.15, seed=5)
    c, _ = _compare(tmp_path, base, cand)
    row = c.latency[0]
    assert row.floor_ratio == pytest.approx(1.15, rel=0.02)
    assert row.floor_ci_low > 1.0 and row.ratio_ci_level == 0.95
    assert row.regression and c.regressed
    (note,) = c.regressions
    assert "fastest invoke x1.1" in note and "5 vs 5 sessions" in note
    title, cols, rows = tables.comparison_tables(c)[0]
    assert "floor ratio" in cols and "REGRESSION" in rows[0][-1]
    assert rows[0][cols.index("floor ratio")] == f"{row.floor_ratio:.3f}"
    assert "fastest invoke" in title


def test_three_sessions_with_one_slowed_baseline_session_are_not_enough(tmp_path):
    """Why the default is 5: with 3, one baseline session slowed all through holds 1/27 of the bootstrap
    resamples, so the interval's lower end is the candidate's floor over that session's: below 1."""
    base = _sessions(synthetic_manifest("b", **ONE), [1.0, 1.0, 1.2], [0.3] * 3, 1.0, seed=4)
    cand = _sessions(_cand(), [1.0, 1.0, 1.0], [0.3] * 3, 1.15, seed=5)
    row = _compare(tmp_path, base, cand)[0].latency[0]
    assert row.floor_ratio == pytest.approx(1.15, rel=0.02) and row.floor_ci_low < 1.0 and not row.regression


def test_the_default_is_five_sessions():
    from edgeq.config.pipeline import BenchmarkStageSpec
    from edgeq.fleet import DEFAULT_SESSIONS

    assert DEFAULT_SESSIONS == 5 and BenchmarkStageSpec().sessions == DEFAULT_SESSIONS


def test_a_faster_candidate_is_an_improvement(tmp_path):
    base = _sessions(synthetic_manifest("b", **ONE), [1.0] * 3, [0.1] * 3, 1.0, seed=6)
    cand = _sessions(_cand(), [1.0] * 3, [0.1] * 3, 0.8, seed=7)
    row = _compare(tmp_path, base, cand)[0].latency[0]
    assert row.verdict == "improvement" and row.floor_ci_high < 1.0 and not row.regression


def test_sessions_without_minima_keep_the_p50_rule(tmp_path):
    base = _sessions(synthetic_manifest("b", **ONE), [1.0] * 3, [0.1] * 3, 1.0, seed=8)
    cand = _sessions(_cand(), [1.0] * 3, [0.1] * 3, 1.3, seed=9)
    for b in cand["benchmarks"]:  # as an edgeq before schema 7 stored it
        for s in b.get("sessions", ()):
            s.pop("min")
    c, _ = _compare(tmp_path, base, cand)
    row = c.latency[0]
    assert row.test == "sessions" and row.floor_ratio is None and row.regression
    assert "floor_ratio" not in row.to_json()


def test_floor_interval_needs_two_sessions_a_side():
    assert floor_ratio_ci([1.0], [1.0, 1.1]) is None
    assert floor_ratio_ci([1.0, 1.1], [1.1]) is None
    lo, hi = floor_ratio_ci([1.0, 1.02, 1.01], [1.15, 1.2, 1.16])
    assert 1.1 < lo <= 1.15 <= hi
    lo, hi = floor_ratio_ci([1.0, 1.02, 1.3], [1.15, 1.2, 1.16])  # 1/27 of the resamples are all the slow session
    assert lo < 1.0 < 1.15 <= hi


def test_the_floor_is_exported_only_for_results_with_session_minima(tmp_path):
    from edgeq import metrics

    base = _sessions(synthetic_manifest("b", **ONE), [1.0, 1.2, 1.0], [0.1] * 3, 1.0, seed=10)
    db = tmp_path / "history.db"
    record_run(load_manifest(base), db)
    fams = {f.name: f for f in metrics.latest_families(db)}
    (sample,) = fams["edgeq_latency_floor_seconds"].samples
    assert sample.value == pytest.approx(min(s["min"] for s in base["benchmarks"][0]["sessions"]) / 1e3)
    assert sample.labels["device"] == "pi5" and "session" not in sample.labels

    old = _sessions(synthetic_manifest("b", **ONE), [1.0] * 3, [0.1] * 3, 1.0, seed=11)
    for s in old["benchmarks"][0]["sessions"]:
        s.pop("min")
    record_run(load_manifest(old), tmp_path / "old.db")
    text = metrics.exposition(metrics.registry_for(metrics.latest_families(tmp_path / "old.db"))).decode()
    assert "edgeq_latency_floor_seconds" not in text and "edgeq_latency_p50_seconds{" in text
