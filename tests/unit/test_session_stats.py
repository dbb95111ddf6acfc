"""Session-level statistics (edgeq.results.stats): pure logic, property-tested; merging agent sessions."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeq.results.stats import (
    SessionFigures,
    median_ci,
    ratio_ci,
    session_figures,
    summarize_sessions,
)

medians = st.lists(st.floats(min_value=1e-6, max_value=10.0, allow_nan=False), min_size=2, max_size=12)


def test_summary_headline_is_the_median_of_session_medians_and_tails_are_pooled():
    rng = np.random.default_rng(1)
    sessions = [rng.normal(m, 0.01, 500) for m in (1.0, 1.3, 1.02)]  # one drifted session
    figs = [session_figures(s) for s in sessions]
    pooled = np.concatenate(sessions)
    s = summarize_sessions(figs, pooled)
    assert s.sessions == 3 and s.count == 1500
    assert s.p50 == pytest.approx(np.median([f.p50 for f in figs]))  # the drifted session does not move it
    assert s.p50 == pytest.approx(1.02, abs=0.01)
    assert s.p90 == pytest.approx(np.percentile(pooled, 90)) and s.p99 == pytest.approx(np.percentile(pooled, 99))
    assert s.mean == pytest.approx(pooled.mean())
    assert s.spread == pytest.approx((max(f.p50 for f in figs) - min(f.p50 for f in figs)) / s.p50)
    assert s.spread_std == pytest.approx(np.std([f.p50 for f in figs], ddof=1))
    assert s.ci_low <= s.p50 <= s.ci_high


def test_one_session_has_no_spread_and_no_interval():
    f = session_figures([1.0, 2.0, 3.0])
    s = summarize_sessions([f], [1.0, 2.0, 3.0])
    assert (s.p50, s.spread, s.spread_std, s.ci_low, s.ci_high) == (2.0, None, None, None, None)
    assert median_ci([1.0]) is None and ratio_ci([1.0], [1.0, 2.0]) is None and ratio_ci([1.0, 2.0], [3.0]) is None


def test_three_sessions_the_ratio_interval_excludes_one_only_when_every_session_moved():
    base = [1.00, 1.01, 0.99]
    lo, hi = ratio_ci(base, [1.15, 1.16, 1.14])
    assert lo > 1.0 and hi > lo
    lo, hi = ratio_ci(base, [1.15, 0.995, 1.16])  # one candidate session as fast as the baseline: not shown
    assert lo < 1.0 < hi
    # one drifted session (+20 %) on an unchanged artifact moves neither the median nor the verdict
    lo, hi = ratio_ci(base, [1.0, 1.2, 1.005])
    assert lo <= 1.0 <= hi


@given(medians)
def test_median_ci_is_deterministic_and_inside_the_range(m):
    a, b = median_ci(m), median_ci(list(m))
    assert a == b
    lo, hi = a
    assert min(m) - 1e-12 <= lo <= hi <= max(m) + 1e-12


@given(medians, medians)
def test_ratio_ci_bounds_and_symmetry(b, c):
    lo, hi = ratio_ci(b, c)
    assert min(c) / max(b) * (1 - 1e-9) <= lo <= hi <= max(c) / min(b) * (1 + 1e-9)
    same = ratio_ci(b, b)
    assert same[0] <= 1.0 + 1e-9 and same[1] >= 1.0 - 1e-9 or len(set(b)) == 1


@given(medians, st.floats(min_value=0.1, max_value=10.0))
def test_ratio_ci_scales_with_the_candidate(b, k):
    lo, hi = ratio_ci(b, b)
    lo2, hi2 = ratio_ci(b, [x * k for x in b])
    assert lo2 == pytest.approx(lo * k, rel=1e-9) and hi2 == pytest.approx(hi * k, rel=1e-9)


@given(st.lists(st.lists(st.floats(min_value=1e-6, max_value=1.0), min_size=1, max_size=30), min_size=1, max_size=6))
def test_summary_is_consistent_for_any_sessions(sessions):
    figs = [session_figures(s) for s in sessions]
    pooled = [x for s in sessions for x in s]
    s = summarize_sessions(figs, pooled)
    assert s.count == len(pooled) and s.sessions == len(sessions)
    assert min(f.p50 for f in figs) - 1e-12 <= s.p50 <= max(f.p50 for f in figs) + 1e-12
    assert s.min <= s.p50 <= s.max and s.p90 <= s.p99 + 1e-12
    assert (s.ci_low is None) == (len(sessions) == 1)
    if s.spread is not None:
        assert s.spread >= 0


def test_session_figures_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        session_figures([])
    with pytest.raises(ValueError):
        summarize_sessions([], [])
    assert SessionFigures(p50=1, p90=2, p99=3, mean=1.5, count=4).count == 4


def test_the_agents_noop_model_is_the_setup_tiny_model():
    from edgeq.agent.floor import NOOP_MODEL_B64
    from edgeq.fleet.setup.scripts import TINY_MODEL_B64

    assert base64.b64decode(NOOP_MODEL_B64) == base64.b64decode(TINY_MODEL_B64)


def test_per_session_work_keeps_the_totals():
    from edgeq.fleet import per_session

    assert per_session(50, 1.0, 3) == (17, pytest.approx(1 / 3))
    assert per_session(50, 1.0, 1) == (50, 1.0)
    assert per_session(1, 0.0, 5) == (1, 0.0)


def _agent_doc(samples: list[float], pid: int) -> dict:
    s = sorted(samples)
    lat = {"p50": s[len(s) // 2], "p90": s[-2], "p99": s[-1], "mean": sum(s) / len(s), "std": 0.0, "min": s[0], "max": s[-1]}
    return {"ok": True, "latency_s": {**lat, "count": len(s)}, "samples_s": samples, "pid": pid, "harness_floor": {"p50_s": 1e-6}}


def test_merge_sessions_of_agent_documents_and_the_run_table():
    from edgeq.cli import tables
    from edgeq.fleet import bench_result, merge_sessions
    from edgeq.fleet.benchmarks import bench_run
    from edgeq.records.fleet import AgentBench, BenchResult, BenchRun

    docs = [_agent_doc([0.001 * f] * 4 + [0.002 * f], pid) for f, pid in ((1.0, 10), (1.5, 11), (1.1, 12))]
    runs = [bench_run(1, AgentBench.from_json(d)) for d in docs]
    failed = BenchRun(threads=1, ok=False, kind="agent_killed", error="killed")
    m = merge_sessions([runs[0], failed, runs[1], runs[2]])  # a failed session is left out
    assert [s.session for s in m.sessions] == [1, 3, 4] and m.count == 15  # session 2 failed: left out
    assert m.latency_ms.p50 == pytest.approx(1.1) and m.latency_ms.min == pytest.approx(1.0)
    assert m.latency_ms.max == pytest.approx(3.0) and m.harness_floor_ms == pytest.approx(0.001)
    assert m.spread == pytest.approx(0.5 / 1.1) and m.ci_ms.low <= 1.1 <= m.ci_ms.high
    assert [(s["session"], s["pid"]) for s in m.raw.sessions] == [(1, 10), (3, 11), (4, 12)] and len(m.raw.samples_s) == 15
    assert merge_sessions([failed]) is failed
    one = merge_sessions(runs[:1])
    assert one.latency_ms == runs[0].latency_ms and len(one.sessions) == 1 and one.ci_ms is None
    row = bench_result("pi", "int8", m, "/x.json").to_json()
    assert row["sessions"][1]["p50"] == pytest.approx(1.5) and row["harness_floor_ms"] == pytest.approx(0.001)
    title, cols, cells = tables.run_benchmarks([BenchResult.from_json(row)])
    assert "median of session medians" in title and cells[0][cols.index("sessions")] == "3"
    old = {k: v for k, v in row.items() if k not in ("sessions", "spread", "spread_std_ms", "ci_ms", "harness_floor_ms")}
    assert "sessions" not in tables.run_benchmarks([BenchResult.from_json(old)])[1]  # older manifests draw as before


def test_sessions_thinned_differently_are_pooled_at_one_stride():
    from edgeq.fleet import merge_sessions
    from edgeq.fleet.benchmarks import bench_run
    from edgeq.fleet.sessions import rethin
    from edgeq.records.fleet import AgentBench

    def doc(runs: int, stride: int, pid: int) -> dict:
        d = _agent_doc([float(i) for i in range(0, runs, stride)], pid)
        d["latency_s"]["count"], d["samples_stride"] = runs, stride
        return d

    a, b = AgentBench.from_json(doc(10, 1, 1)), AgentBench.from_json(doc(20, 2, 2))
    assert rethin(a, 2) == [0.0, 2.0, 4.0, 6.0, 8.0] and rethin(b, 2) == list(b.samples_s)
    assert rethin(AgentBench.from_json(doc(9, 3, 3)), 4) == [0.0, 3.0, 6.0]  # runs 0, 4 and 8: kept 0, 3 and 6
    m = merge_sessions([bench_run(1, a), bench_run(1, b)])
    assert m.raw.samples_stride == 2 and [s["samples_kept"] for s in m.raw.sessions] == [5, 10]
    assert len(m.raw.samples_s) == 15 and m.count == 30
