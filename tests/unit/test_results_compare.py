"""Comparison over time: pure logic on synthetic runs (incl. the Mann-Whitney U test), then the real CLI."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq.errors import StoreError
from edgeq.results import StoredRun, compare
from edgeq.results.stats import mann_whitney_u
from edgeq.testing.promfarm import synthetic_manifest


def _loaded(m: dict) -> dict:
    """A manifest as query.load(..., samples=True) returns it (units: seconds), as a document."""
    benches = []
    for i, b in enumerate(m["benchmarks"]):
        if not b["ok"]:
            benches.append({"id": i, "device": b["device"], "variant": b["variant"], "threads": b["threads"], "ok": False})
            continue
        benches.append(
            {
                "id": i,
                "device": b["device"],
                "variant": b["variant"],
                "threads": b["threads"],
                "ok": True,
                "p50_s": b["latency_ms"]["p50"] / 1e3,
                "p90_s": b["latency_ms"]["p90"] / 1e3,
                "peak_rss_bytes": b["peak_rss_bytes"],
                "energy_j": b["power"]["joules_per_inference"],
                "samples_s": b["raw"]["samples_s"],
            }
        )
    vals = {k: {"accuracy": v["accuracy"], "size_bytes": v["size_bytes"]} for k, v in m["variants"].items()}
    return {
        "run_id": m["run_id"],
        "pipeline": m["pipeline"],
        "status": m["status"],
        "started": m["started"],
        "started_ts": 0.0,
        "runtime": {},
        "pipeline_sha256": m["pipeline_sha256"],
        "versions": m["versions"],
        "benchmarks": benches,
        "validations": vals,
    }


def _compare(base: dict, cand: dict, **opts) -> dict:
    """compare() over two such documents read as records; its Comparison as the `edgeq compare --json` document."""
    return compare(StoredRun.from_json(base), StoredRun.from_json(cand), **opts).to_json()


@pytest.mark.parametrize("seed", range(5))
def test_mann_whitney_matches_scipy(seed):
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(seed)
    x = np.round(rng.lognormal(0, 0.3, rng.integers(8, 400)), 2)  # rounded: plenty of ties
    y = np.round(rng.lognormal(0.05 * seed, 0.3, rng.integers(8, 400)), 2)
    ours = mann_whitney_u(x, y)
    ref = scipy_stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)
    assert ours.u == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_mann_whitney_edges():
    assert mann_whitney_u([1.0] * 3, [2.0] * 30).p_value is None  # too few samples: no claim
    assert mann_whitney_u([1.0] * 20, [1.0] * 20).p_value == 1.0  # all tied
    r = mann_whitney_u(np.arange(100.0), np.arange(100.0) + 1000)
    assert r.p_value < 1e-30 and r.effect == 0.0


def test_significant_slowdown_over_threshold_is_a_regression():
    base = synthetic_manifest("b", seed=1)
    cand = synthetic_manifest("c", seed=2, p50_s={("pi5", "int8"): 0.5e-3 * 1.25})  # int8 on pi5: 25% slower
    c = _compare(_loaded(base), _loaded(cand))
    rows = {(r["device"], r["variant"]): r for r in c["latency"]}
    reg = rows[("pi5", "int8")]
    assert reg["regression"] and reg["verdict"] == "regression" and reg["ratio"] == pytest.approx(1.25, rel=0.03)
    assert reg["p_value"] < 1e-10 and reg["n_base"] == reg["n_candidate"] == 400
    assert [r["verdict"] for k, r in rows.items() if k != ("pi5", "int8")] == ["same", "same", "same"]
    assert c["regressed"] and len(c["regressions"]) == 2  # latency, and energy per inference follows latency
    assert any(s.startswith("latency int8 on pi5 (1 thread)") for s in c["regressions"])
    assert any(s.startswith("energy per inference int8 on pi5") for s in c["regressions"])


def test_ratio_over_threshold_without_significance_is_noise():
    # 9 samples per side, widely spread: the p50s differ by 20% but the test cannot tell them apart
    rng = np.random.default_rng(7)
    base = synthetic_manifest("b", devices=("pi5",), variants=("int8",), n=9)
    cand = synthetic_manifest("c", devices=("pi5",), variants=("int8",), n=9)
    s_b = list(0.5e-3 * np.exp(rng.normal(0, 0.6, 9)))
    s_c = list(np.array(s_b)[rng.permutation(9)] * 1.0)
    s_c[int(np.argsort(s_c)[4])] *= 1.2  # nudge the median only
    for m, s in ((base, s_b), (cand, s_c)):
        m["benchmarks"][0]["raw"]["samples_s"] = s
        m["benchmarks"][0]["latency_ms"]["p50"] = float(np.median(s)) * 1e3
    lb, lc = _loaded(base), _loaded(cand)
    lc["benchmarks"][0]["p50_s"] = lb["benchmarks"][0]["p50_s"] * 1.2
    row = _compare(lb, lc)["latency"][0]
    assert row["ratio"] == pytest.approx(1.2) and row["p_value"] > 0.05
    assert row["verdict"] == "noise" and not row["regression"]


def test_significant_but_small_change_is_not_a_regression():
    base = synthetic_manifest("b", seed=1, n=5000)
    cand = synthetic_manifest("c", seed=2, n=5000, p50_s={("pi5", "int8"): 0.5e-3 * 1.04})
    row = next(r for r in _compare(_loaded(base), _loaded(cand))["latency"] if (r["device"], r["variant"]) == ("pi5", "int8"))
    assert row["significant"] and row["ratio"] < 1.10 and row["verdict"] == "same" and not row["regression"]


def test_improvement_accuracy_memory_and_threshold_options():
    base = synthetic_manifest("b", seed=1)
    cand = synthetic_manifest(
        "c", seed=2, p50_s={("pi4", "fp32"): 2e-3 * 0.6}, accuracy={"int8": 0.93}, peak_rss={("pi5", "fp32"): 90_000_000}
    )
    c = _compare(_loaded(base), _loaded(cand))
    rows = {(r["device"], r["variant"]): r for r in c["latency"]}
    assert rows[("pi4", "fp32")]["verdict"] == "improvement" and not rows[("pi4", "fp32")]["regression"]
    acc = {a["variant"]: a for a in c["accuracy"]}
    assert acc["int8"]["regression"] and acc["int8"]["delta"] == pytest.approx(-0.015) and not acc["fp32"]["regression"]
    mem = {(m["device"], m["variant"]): m for m in c["memory"]}
    assert mem[("pi5", "fp32")]["regression"] and mem[("pi5", "fp32")]["ratio"] == pytest.approx(1.5)
    assert sorted(s.split()[0] for s in c["regressions"]) == ["accuracy", "peak"]
    # a looser tolerance and threshold accept both
    c = _compare(_loaded(base), _loaded(cand), threshold=1.6, accuracy_tolerance=0.02)
    assert not c["regressed"]


def test_runs_sharing_nothing_are_a_clear_error():
    a = synthetic_manifest("a", devices=("pi5",), variants=("fp32",))
    b = synthetic_manifest("b", pipeline="other", devices=("jetson",), variants=("int8",))
    with pytest.raises(StoreError, match="share no device/variant") as e:
        _compare(_loaded(a), _loaded(b))
    assert "pi5" in e.value.message and "jetson" in e.value.message
    with pytest.raises(StoreError, match="with itself"):
        _compare(_loaded(a), _loaded(a))


def test_missing_and_failed_boards_are_listed_not_compared():
    base = synthetic_manifest("b", devices=("pi5", "pi4"))
    cand = synthetic_manifest("c", devices=("pi5", "pi4"), failed_devices=("pi4",), status="fleet_failed")
    c = _compare(_loaded(base), _loaded(cand))
    assert {r["device"] for r in c["latency"]} == {"pi5"}
    assert {(x["device"], x["variant"]) for x in c["only_in_base"]} == {("pi4", "fp32"), ("pi4", "int8")}
