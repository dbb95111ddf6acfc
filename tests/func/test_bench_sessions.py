"""Benchmark sessions on the local board (the real agent in a subprocess, real TFLite): K agent processes per
(board, variant, threads), thread counts and variants interleaved, the harness floor beside every result."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from edgeq import fleet
from edgeq.fleet.setup.scripts import TINY_MODEL_B64


def _tiny(path: Path) -> Path:
    path.write_bytes(base64.b64decode(TINY_MODEL_B64))
    return path


def test_edgeq_bench_runs_five_sessions_per_thread_count_interleaved(edgeq, tmp_path):
    model = _tiny(tmp_path / "tiny.tflite")
    r = edgeq(
        "bench", model, "--target", "local", "--runs", "30", "--min-seconds", "0.3", "--threads", "1", "--threads", "2", "--json"
    )
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["sessions"] == 5 and doc["runs"] == 30  # the default: edgeq.fleet.DEFAULT_SESSIONS
    (board,) = doc["devices"]
    pids = []
    for res in board["results"]:
        assert [s["session"] for s in res["sessions"]] == [1, 2, 3, 4, 5]
        assert res["count"] == sum(s["count"] for s in res["sessions"]) and all(s["count"] >= 10 for s in res["sessions"])
        meds = sorted(s["p50"] for s in res["sessions"])
        assert res["latency_ms"]["p50"] == meds[2]  # the median of the session medians
        assert res["ci_ms"]["low"] <= res["latency_ms"]["p50"] <= res["ci_ms"]["high"]
        assert res["spread"] == (meds[-1] - meds[0]) / meds[2]
        assert all(0 < s["min"] <= s["p50"] for s in res["sessions"])  # each session's fastest invoke, for compare
        assert 0 < res["harness_floor_ms"] < 1.0 and all(s["harness_floor_ms"] > 0 for s in res["sessions"])
        raw = res["raw"]
        assert len(raw["samples_s"]) == sum(s["samples_kept"] for s in raw["sessions"])
        pids += [s["pid"] for s in raw["sessions"]]
    assert len(set(pids)) == 10  # 2 thread counts x 5 sessions: ten agent processes, ten interpreters

    table = edgeq("bench", model, "--target", "local", "--runs", "10", "--min-seconds", "0.05", "--sessions", "2")
    assert table.code == 0, table.stderr
    assert "Sessions" in table.stdout and "Interval" in table.stdout and "Floor" in table.stdout  # a tiny model: floor shown


def test_fleet_bench_interleaves_thread_counts_within_sessions(tmp_path):
    events = []
    res = fleet.bench(
        fleet.load_inventory(None),
        ["local"],
        _tiny(tmp_path / "tiny.tflite"),
        runs=9,
        min_seconds=0.0,
        threads=[1, 2],
        sessions=3,
        progress=lambda ev: events.append(ev) if ev.get("event") == "bench" else None,
    )
    assert res.ok
    assert [(e["session"], e["threads"]) for e in events] == [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]
    assert all(len(b.sessions) == 3 and b.count >= 9 for b in res.devices[0].results)


def test_benchmark_stage_interleaves_variants_session_by_session(tmp_path):
    from edgeq.config import BenchmarkStageSpec
    from edgeq.pipeline.fleet import benchmark_stage
    from edgeq.records.run import VariantResult

    variants = {}
    for key in ("a", "b"):
        p = _tiny(tmp_path / f"{key}.tflite")
        variants[key] = VariantResult(type="fp32", artifact=str(p), sha256="0" * 64, size_bytes=p.stat().st_size)
    spec = BenchmarkStageSpec(targets=["local"], runs=9, warmup=1, min_seconds=0.0, inputs="random", sessions=3)
    log: list[str] = []
    stage, checks, failures = benchmark_stage(
        spec, ["local"], fleet.load_inventory(None), variants, tmp_path / "run", None, log.append, lambda s: None
    )
    heads = [line.split(":")[0] for line in log if line.startswith("benchmark ")]
    assert heads == [f"benchmark {v} session {s}/3" for s in (1, 2, 3) for v in ("a", "b")]  # A B A B A B
    assert not failures and checks is None
    assert [(r.variant, len(r.sessions)) for r in stage.results] == [("a", 3), ("b", 3)]
    pids = set()
    for r in stage.results:
        raw = json.loads(Path(r.raw).read_text())
        pids |= {s["pid"] for s in raw["sessions"]}
        assert r.ci_ms is not None and r.harness_floor_ms is not None
    assert len(pids) == 6


def test_a_board_unreachable_in_one_session_is_not_dialled_again_and_keeps_its_rows(tmp_path):
    from edgeq.config import BenchmarkStageSpec
    from edgeq.pipeline.fleet import benchmark_stage
    from edgeq.records.run import VariantResult

    devices = tmp_path / "devices.yaml"
    devices.write_text(
        "devices:\n"
        "  - {name: local, transport: local, tags: [lab]}\n"
        "  - {name: dead, host: 127.0.0.1, port: 1, tags: [lab], retries: 1, retry_delay: 0.1, connect_timeout: 2}\n"
    )
    variants = {}
    for key in ("a", "b"):
        p = _tiny(tmp_path / f"{key}.tflite")
        variants[key] = VariantResult(type="fp32", artifact=str(p), sha256="0" * 64, size_bytes=p.stat().st_size)
    spec = BenchmarkStageSpec(targets=["lab"], runs=6, warmup=1, min_seconds=0.0, inputs="random", sessions=3)
    log: list[str] = []
    stage, _, failures = benchmark_stage(
        spec, ["lab"], fleet.load_inventory(devices), variants, tmp_path / "run", None, log.append, lambda s: None
    )
    dialled = [line for line in log if line.startswith("  dead: connect")]
    assert len(dialled) == 1, log  # session 1 of variant a only
    rows = {(r.device, r.variant): r for r in stage.results}
    assert rows[("dead", "a")].ok is False and rows[("dead", "b")].ok is False and rows[("dead", "b")].status == "unreachable"
    assert len(rows[("local", "a")].sessions) == len(rows[("local", "b")].sessions) == 3
    assert any("dead" in f for f in failures)


def test_benchmark_stage_measures_a_rerun_baseline_beside_its_variant_under_its_own_name(tmp_path):
    from edgeq.config import BenchmarkStageSpec
    from edgeq.pipeline.fleet import benchmark_stage
    from edgeq.records.run import VariantResult

    cand = _tiny(tmp_path / "int8.tflite")
    old = tmp_path / "old"
    old.mkdir()
    baseline = _tiny(old / "int8.tflite")  # last night's artifact (same stem: it must not replace the deployed one)
    variants = {"int8": VariantResult(type="int8", artifact=str(cand), sha256="0" * 64, size_bytes=cand.stat().st_size)}
    spec = BenchmarkStageSpec(targets=["local"], runs=6, warmup=1, min_seconds=0.0, inputs="random", sessions=2)
    log: list[str] = []
    inv = fleet.load_inventory(None)
    stage, _, failures = benchmark_stage(
        spec, ["local"], inv, variants, tmp_path / "run", None, log.append, lambda s: None, {"int8": baseline}
    )
    heads = [line.split(":")[0] for line in log if line.startswith("benchmark ")]
    assert heads == [f"benchmark {v} session {s}/2" for s in (1, 2) for v in ("int8", "int8@baseline")]  # A A' A A'
    assert not failures and [(r.variant, len(r.sessions)) for r in stage.results] == [("int8", 2), ("int8@baseline", 2)]
    names = {r.variant: json.loads(Path(r.raw).read_text())["model"]["name"] for r in stage.results}
    assert names == {"int8": "int8", "int8@baseline": "int8-baseline"}


def test_bench_models_runs_one_session_loop_per_board_for_every_model(tmp_path):
    """edgeq.fleet.bench_models (what the pipeline's benchmark stage drives): on the board, session 1 of every
    model then session 2, thread counts within each; one summary per model, each deployed under its own name."""
    events = []
    models = [fleet.BenchModel(k, _tiny(tmp_path / f"{k}.tflite")) for k in ("a", "b")]
    res = fleet.bench_models(
        fleet.load_inventory(None),
        ["local"],
        models,
        runs=4,
        min_seconds=0.0,
        threads=[1, 2],
        sessions=2,
        progress=lambda ev: events.append(ev) if ev.get("event") == "bench" else None,
    )
    assert [(e["session"], e["model"], e["threads"]) for e in events] == [
        (s, m, t) for s in (1, 2) for m in ("a", "b") for t in (1, 2)
    ]
    assert list(res) == ["a", "b"] and all(r.ok and r.sessions == 2 for r in res.values())
    for key, r in res.items():
        (board,) = r.devices
        assert r.name == key and board.deploy is not None and [x.threads for x in board.results] == [1, 2]
        assert all(len(x.sessions) == 2 for x in board.results)


def test_edgeq_bench_self_sizes_its_sessions(edgeq, tmp_path):
    """--ci-target: a huge target is met at the minimum sessions; a tiny one runs to --max-sessions and says so."""
    model = _tiny(tmp_path / "tiny.tflite")
    common = ("bench", model, "--target", "local", "--runs", "6", "--min-seconds", "0", "--threads", "1", "--no-record")
    r = edgeq(*common, "--sessions", "3", "--ci-target", "99.9%", "--json")
    assert r.code == 0, r.stderr
    (res,) = r.json()["devices"][0]["results"]
    said = (res["ci_sizing"], [s["p50"] for s in res["sessions"]])
    assert len(res["sessions"]) == 3 and res["ci_sizing"]["stop"] == "target_met", said
    assert res["ci_sizing"]["sessions_run"] == 3 and res["ci_sizing"]["target"] == pytest.approx(0.999)
    assert res["ci_ms"]["level"] == 0.75 and res["ci_ms"]["method"] == "order statistics of session medians"
    r = edgeq(*common, "--sessions", "2", "--ci-target", "0.000001", "--max-sessions", "4", "--json")
    assert r.code == 0, r.stderr
    (res,) = r.json()["devices"][0]["results"]
    assert [s["session"] for s in res["sessions"]] == [1, 2, 3, 4]
    z = res["ci_sizing"]
    assert (z["stop"], z["sessions_run"]) == ("budget_exhausted", 4) and z["half_width"] > 0
    r = edgeq(*common, "--sessions", "2", "--ci-target", "0.000001", "--max-sessions", "3")
    assert r.code == 0, r.stderr
    assert "budget_exhausted after 3 sessions" in r.stderr, r.stderr
    assert "(75.0 %)" in r.stdout, r.stdout


def test_benchmark_stage_self_sizes_with_ci_target(tmp_path):
    """benchmark.ci_target on the local board: a tiny target runs each variant to max_sessions and says so."""
    from edgeq.config import BenchmarkStageSpec
    from edgeq.pipeline.fleet import benchmark_stage
    from edgeq.records.run import VariantResult

    p = _tiny(tmp_path / "a.tflite")
    variants = {"a": VariantResult(type="fp32", artifact=str(p), sha256="0" * 64, size_bytes=p.stat().st_size)}
    spec = BenchmarkStageSpec(
        targets=["local"], runs=4, warmup=1, min_seconds=0.0, inputs="random", sessions=2, ci_target="1e-6%", max_sessions=3
    )
    stage, _, failures = benchmark_stage(
        spec, ["local"], fleet.load_inventory(None), variants, tmp_path / "run", None, lambda s: None, lambda s: None
    )
    assert not failures
    (r,) = stage.results
    assert len(r.sessions) == 3 and r.ci_sizing is not None
    assert (r.ci_sizing.stop, r.ci_sizing.sessions_run) == ("budget_exhausted", 3)
    assert r.ci_ms is not None and r.ci_ms.level == 0.75
