"""The interval of a benchmark's p50 (edgeq.results.stats.median_interval: exact order statistics, with its true
level) and self-sizing (edgeq.fleet.sessions.run_sessions with a Sizing). Pure logic; the local-board runs are in
tests/func/test_bench_sessions.py."""

from __future__ import annotations

import itertools

import pytest
from scipy.stats import binom

from edgeq.errors import ConfigError
from edgeq.fleet.sessions import ORDER_STATISTICS, Sizing, merge_sessions, parse_ci_target, run_sessions
from edgeq.records.fleet import AgentBench, BenchRun, MedianCI
from edgeq.results.stats import median_interval, median_interval_level, median_interval_rank


@pytest.mark.parametrize("n", range(1, 41))
def test_the_level_is_the_binomial_one(n):
    for k in range(1, (n + 1) // 2 + 1):
        assert median_interval_level(n, k) == pytest.approx(1 - 2 * binom.cdf(k - 1, n, 0.5), abs=1e-12)


@pytest.mark.parametrize("n", range(2, 61))
def test_the_rank_is_the_narrowest_that_keeps_the_level(n):
    k = median_interval_rank(n, 0.95)
    level = 1 - 2 * binom.cdf(k - 1, n, 0.5)
    if k > 1:  # reachable: at least 95 %, and one step narrower would not be
        assert level >= 0.95 and (k + 1 > (n + 1) // 2 or 1 - 2 * binom.cdf(k, n, 0.5) < 0.95)
    else:
        assert level == pytest.approx(1 - 2 * 0.5**n)


def test_few_sessions_give_min_max_at_their_true_level():
    assert median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0, 0.75)
    assert median_interval([5.0, 1.0, 2.0, 4.0, 3.0]) == (1.0, 5.0, 0.9375)
    assert median_interval(list(range(9))) == (1, 7, pytest.approx(1 - 2 * binom.cdf(1, 9, 0.5)))
    assert median_interval([1.0]) is None and median_interval([]) is None
    with pytest.raises(ValueError):
        median_interval_level(5, 4)


def test_the_level_holds_over_every_ordering():
    """Exchangeable sessions: the interval holds the median of 2m+1 ... checked exactly by counting, for n = 5,
    against a population of 7 distinct values (every 5-sample, uniform over 7^5 draws)."""
    pop = range(7)  # median 3
    n = 5
    hits = sum(1 for d in itertools.product(pop, repeat=n) if min(d) <= 3 <= max(d))
    # discrete populations hold it at least as often as the continuous level says
    assert hits / 7**n >= median_interval_level(n, 1)


def _run(ms: float, pid: int, threads: int = 1) -> BenchRun:
    from edgeq.fleet.benchmarks import bench_run

    s = [ms / 1000.0] * 4
    lat = {"p50": s[0], "p90": s[0], "p99": s[0], "mean": s[0], "std": 0.0, "min": s[0], "max": s[0], "count": 4}
    return bench_run(threads, AgentBench.from_json({"ok": True, "latency_s": lat, "samples_s": s, "pid": pid}))


def test_a_merged_run_records_its_interval_level_and_method():
    m = merge_sessions([_run(x, i) for i, x in enumerate([1.0, 1.2, 1.1, 1.05, 1.15])])
    assert (m.ci_ms.low, m.ci_ms.high, m.ci_ms.level, m.ci_ms.method) == (1.0, 1.2, 0.9375, ORDER_STATISTICS)
    assert m.to_json()["ci_ms"]["level"] == 0.9375
    old = MedianCI.from_json({"low": 1.0, "high": 2.0})  # a record from before: a bootstrap, stated 95 %
    assert (old.level, old.method) == (0.95, "bootstrap of session medians")


class Board:
    def __init__(self, ms):
        self.ms = ms  # session -> ms
        self.sessions: list[int] = []

    def start(self, model: str, session: int) -> None:
        self.sessions.append(session)

    def measure(self, model: str, threads: int, session: int) -> BenchRun:
        return _run(self.ms(session), session, threads)


def test_a_quiet_board_stops_at_the_minimum():
    b = Board(lambda s: 1.0 + 0.001 * s)
    runs, _ = run_sessions(["a"], [1, 2], 3, b.start, b.measure, Sizing(target=0.02, max_sessions=10))
    assert b.sessions == [1, 2, 3]
    for r in runs["a"]:
        assert len(r.sessions) == 3
        assert (r.ci_sizing.stop, r.ci_sizing.sessions_run, r.ci_sizing.target) == ("target_met", 3, 0.02)
        assert r.ci_sizing.half_width == pytest.approx(0.001, rel=0.01)


def test_a_noisy_board_runs_until_the_budget():
    b = Board(lambda s: 1.0 + 0.5 * (s % 2))
    runs, _ = run_sessions(["a"], [1], 3, b.start, b.measure, Sizing(target=0.02, max_sessions=4))
    (r,) = runs["a"]
    assert b.sessions == [1, 2, 3, 4] and len(r.sessions) == 4
    assert (r.ci_sizing.stop, r.ci_sizing.sessions_run) == ("budget_exhausted", 4)
    assert r.ci_sizing.half_width == pytest.approx(0.25 / 1.25)


def test_sessions_are_added_until_the_target_is_met():
    b = Board(lambda s: 2.0 if s == 1 else 1.0 + 0.001 * s)  # one slow first session, then quiet
    runs, _ = run_sessions(["a"], [1], 2, b.start, b.measure, Sizing(target=0.05, max_sessions=20))
    (r,) = runs["a"]
    # [min, max] while k = 1 (n <= 8), the outlier dropped from n = 9 (k = 2)
    assert r.ci_sizing.stop == "target_met" and r.ci_sizing.sessions_run == 9


def test_a_time_budget_stops_it():
    t = iter(range(0, 1000, 10))
    b = Board(lambda s: 1.0 + 0.5 * (s % 2))
    runs, _ = run_sessions(
        ["a"], [1], 2, b.start, b.measure, Sizing(target=0.01, max_sessions=50, max_seconds=25), now=lambda: next(t)
    )
    (r,) = runs["a"]
    assert r.ci_sizing.stop == "budget_exhausted" and 2 < r.ci_sizing.sessions_run < 50


def test_without_sizing_nothing_changes():
    b = Board(lambda s: 1.0 + 0.5 * (s % 2))
    runs, _ = run_sessions(["a"], [1], 3, b.start, b.measure)
    (r,) = runs["a"]
    assert b.sessions == [1, 2, 3] and r.ci_sizing is None and "ci_sizing" not in r.to_json()


@pytest.mark.parametrize(("text", "want"), [("2%", 0.02), ("2", 0.02), (0.5, 0.005), (" 10 % ", 0.1)])
def test_ci_target_reads_as_a_percentage(text, want):
    assert parse_ci_target(text) == pytest.approx(want)


@pytest.mark.parametrize("text", ["0", "100%", "two", "-1"])
def test_a_bad_ci_target_is_refused(text):
    with pytest.raises(ConfigError):
        parse_ci_target(text)


def test_the_pipeline_key_becomes_the_loops_sizing():
    from edgeq.config import BenchmarkStageSpec
    from edgeq.pipeline.fleet import _sizing

    assert _sizing(BenchmarkStageSpec()) is None
    z = _sizing(BenchmarkStageSpec(ci_target="2%", max_sessions=12, max_seconds=60))
    assert z == Sizing(target=0.02, max_sessions=12, max_seconds=60.0)
    assert _sizing(BenchmarkStageSpec(ci_target=1.5)).target == pytest.approx(0.015)
    for bad in ("fast", "0%", 150):
        with pytest.raises(ValueError):
            BenchmarkStageSpec(ci_target=bad)
