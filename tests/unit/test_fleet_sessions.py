"""The one session loop (edgeq.fleet.sessions.run_sessions), the one default, the records a bench run and its
manifest row share, and the one way a board's failure reads. Pure logic: the loop is driven by plain functions
here; tests/func/test_bench_sessions.py runs it on the local board with the real agent."""

from __future__ import annotations

import inspect

import pytest

from edgeq import fleet
from edgeq.fleet.sessions import run_sessions
from edgeq.fleet.transport.base import BoardError
from edgeq.records.fleet import AgentBench, BenchFigures, BenchResult, BenchRun, BoardOutcome


def _raw(ms: float, pid: int) -> AgentBench:
    s = [ms / 1000.0] * 4
    lat = {"p50": s[0], "p90": s[0], "p99": s[0], "mean": s[0], "std": 0.0, "min": s[0], "max": s[0], "count": 4}
    return AgentBench.from_json({"ok": True, "latency_s": lat, "samples_s": s, "pid": pid})


class Board:
    """start/measure as the bench on a board gives them: what was asked, in order; failures on request."""

    def __init__(self, fail: dict | None = None, refuse: set[str] | None = None):
        self.calls: list[tuple] = []
        self.fail = fail or {}  # (model, threads, session) -> kind
        self.refuse = refuse or set()

    def start(self, model: str, session: int) -> None:
        self.calls.append(("start", model, session))
        if model in self.refuse and session == 1:
            raise BoardError("pi", f"deploy of {model} refused", "hint", kind="load_failed")

    def measure(self, model: str, threads: int, session: int) -> BenchRun:
        self.calls.append(("bench", model, threads, session))
        kind = self.fail.get((model, threads, session))
        if kind:
            return BenchRun(threads=threads, ok=False, kind=kind, error=f"pi: {kind}", hint="h")
        from edgeq.fleet.benchmarks import bench_run

        return bench_run(threads, _raw(1.0 + session, 100 * session + threads))


def test_sessions_interleave_models_then_thread_counts():
    b = Board()
    runs, failed = run_sessions(["a", "b"], [1, 2], 3, b.start, b.measure)
    want = [c for s in (1, 2, 3) for m in ("a", "b") for c in [("start", m, s), ("bench", m, 1, s), ("bench", m, 2, s)]]
    assert b.calls == want  # A B A B: a board's drift hits every model and thread count alike
    assert not failed and list(runs) == ["a", "b"]
    for m in ("a", "b"):
        assert [r.threads for r in runs[m]] == [1, 2]
        assert all(r.ok and [s.session for s in r.sessions] == [1, 2, 3] for r in runs[m])


def test_a_run_that_gives_up_ends_its_model_only():
    b = Board(fail={("a", 1, 2): "command_timeout"})
    runs, failed = run_sessions(["a", "b"], [1, 2], 3, b.start, b.measure)
    assert ("bench", "a", 2, 2) not in b.calls and not [c for c in b.calls if c[1] == "a" and c[-1] == 3]
    assert [c for c in b.calls if c[0] == "bench" and c[1] == "b"] == [("bench", "b", t, s) for s in (1, 2, 3) for t in (1, 2)]
    a1, a2 = runs["a"]
    # the sessions measured before stay; the merged run says what went wrong
    assert (
        a1.ok and [s.session for s in a1.sessions] == [1] and a1.kind == "command_timeout" and a1.error == "pi: command_timeout"
    )
    assert a2.ok and [s.session for s in a2.sessions] == [1] and a2.kind is None
    assert not failed


def test_a_failed_session_keeps_the_others_and_its_number():
    b = Board(fail={("a", 1, 2): "agent_killed"})
    runs, _ = run_sessions(["a"], [1], 3, b.start, b.measure)
    (r,) = runs["a"]
    assert r.ok and [s.session for s in r.sessions] == [1, 3] and (r.kind, r.hint) == ("agent_killed", "h")


def test_a_model_that_cannot_start_is_reported_and_the_others_run():
    b = Board(refuse={"b"})
    runs, failed = run_sessions(["a", "b"], [1], 2, b.start, b.measure)
    assert list(runs) == ["a"] and len(runs["a"][0].sessions) == 2
    assert failed["b"].kind == "load_failed" and ("start", "b", 2) not in b.calls


def test_every_failure_reads_one_way():
    from edgeq.errors import ConfigError
    from edgeq.fleet.fanout import failure_fields

    assert failure_fields("pi", BoardError("pi", "refused", "h", kind="refused")) == {
        "status": "unreachable",
        "kind": "refused",
        "error": "pi: refused",
        "hint": "h",
    }
    assert failure_fields("pi", ConfigError("bad", "fix")) == {
        "status": "failed",
        "kind": "ConfigError",
        "error": "pi: bad",
        "hint": "fix",
    }
    bug = failure_fields("pi", ValueError("x"))
    assert bug["kind"] == "internal" and bug["error"] == "pi: internal error: ValueError: x"


def test_a_numeric_check_of_a_board_that_failed_is_its_outcome():
    from edgeq.fleet.numeric import _failed

    gone = BoardOutcome(device="pi", status="unreachable", kind="refused", error="pi: refused", hint="h")
    c = _failed(gone, "int8", (1.0, 1e-3))
    assert (c.ok, c.kind, c.error, c.hint, c.variant) == (False, "refused", "pi: refused", "h", "int8")
    skipped = BoardOutcome(device="pi", status="skipped")
    assert (_failed(skipped, None, (1.0, 1e-3)).kind, _failed(skipped, None, (1.0, 1e-3)).error) == ("skipped", "pi: skipped")


def test_one_session_default_everywhere():
    from edgeq.cli.fleet import bench_cmd
    from edgeq.config import BenchmarkStageSpec

    assert fleet.DEFAULT_SESSIONS == 5  # the README's (docs/measurement.md's) default
    for fn in (fleet.bench, fleet.bench_models):
        assert inspect.signature(fn).parameters["sessions"].default == fleet.DEFAULT_SESSIONS
    assert inspect.signature(bench_cmd).parameters["sessions"].default == fleet.DEFAULT_SESSIONS  # edgeq bench
    assert BenchmarkStageSpec().sessions == fleet.DEFAULT_SESSIONS  # benchmark.sessions


def test_a_bench_run_and_its_row_share_their_figures():
    from edgeq.fleet import bench_result, merge_sessions
    from edgeq.fleet.benchmarks import bench_run

    assert issubclass(BenchRun, BenchFigures) and issubclass(BenchResult, BenchFigures)
    shared = set(BenchFigures.model_fields)
    assert shared <= set(BenchRun.model_fields) and shared <= set(BenchResult.model_fields) and len(shared) == 18
    run = merge_sessions([bench_run(1, _raw(1.0, 1)), bench_run(1, _raw(2.0, 2)), bench_run(1, _raw(3.0, 3))])
    row = bench_result("pi", "int8", run, "/r.json")
    assert row.figures() == run.figures() and row.sessions == run.sessions and row.ci_ms == run.ci_ms
    assert list(row.to_json())[:9] == ["device", "variant", "threads", "ok", "latency_ms", "count", "init_ms"] + [
        "first_invoke_ms",
        "peak_rss_bytes",
    ]
    assert list(row.to_json())[-5:] == ["sessions", "spread", "spread_std_ms", "ci_ms", "harness_floor_ms"]
    assert list(run.to_json())[:3] == ["threads", "ok", "latency_ms"] and list(run.to_json())[-5:] == list(row.to_json())[-5:]
    assert BenchResult.from_json(row.to_json()) == row  # a manifest row reads back


def test_bench_models_refuses_two_models_of_one_key(tmp_path):
    from edgeq.errors import ConfigError

    m = fleet.BenchModel("a", tmp_path / "a.tflite")
    with pytest.raises(ConfigError, match="distinct keys"):
        fleet.bench_models(fleet.load_inventory(None), ["local"], [m, m])
