"""Pipeline runs that end with deploy + benchmark on the embedded local board (real agent subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgeq.testing.common import assert_clean_error

FLEET = {
    "deploy": {"targets": ["local"], "variants": ["int8"]},
    "benchmark": {
        "targets": ["local"],
        "runs": 30,
        "warmup": 3,
        "min_seconds": 0.1,
        "threads": [1, 2],
        "accuracy_check": True,
        "numeric_check": True,
        "numeric_rows": 3,
    },
}


def test_run_deploys_and_benchmarks_on_local_board(edgeq, write_pipeline, tmp_path):
    r = edgeq("run", write_pipeline(FLEET), "--json", cwd=tmp_path)
    assert r.code == 0, r.stderr
    doc = r.json()
    rows = doc["benchmarks"]
    assert {(b["variant"], b["threads"]) for b in rows} == {("fp32", 1), ("fp32", 2), ("int8", 1), ("int8", 2)}
    for b in rows:
        assert b["ok"] and b["device"] == "local"
        assert b["count"] >= 30 and 0 < b["latency_ms"]["p50"] <= b["latency_ms"]["p99"]
        assert b["board"]["arch"] and b["runtime"]["name"] == "ai-edge-litert"
        raw = json.loads(Path(b["raw"]).read_text())
        # raw samples are kept: every session's, thinned to one stride (every k-th timed run of each session)
        assert len(raw["samples_s"]) == sum(-(-s["latency_s"]["count"] // raw["samples_stride"]) for s in raw["sessions"])
    dep = doc["stages"]["deploy"]["results"]["int8"]
    assert dep["devices"][0]["status"] in ("ok", "changed")
    # the on-board accuracy of every variant equals the validate stage's (same inputs, same runtime)
    for a in doc["stages"]["benchmark_accuracy"]:
        assert a["ok"] and a["board_accuracy"] == a["validate_accuracy"], a
    # benchmark.numeric_check: each variant's golden rows traced op by op on the board and here (same runtime:
    # every op matches), stored in the history and listed by `edgeq history`
    checks = doc["stages"]["benchmark_numeric"]
    assert {(c["device"], c["variant"]) for c in checks} == {("local", "fp32"), ("local", "int8")}
    for c in checks:
        assert c["ok"] and c["ops_compared"] > 0 and c["rows"] == 3 and "first_divergent" not in c, c
    golden = Path(doc["stages"]["benchmark"]["numeric_inputs"])
    assert golden.parent.name == doc["run_id"] and np.load(golden).shape[0] == 3
    stored = {(n["device"], n["variant"]): n for n in edgeq("history", "--json", cwd=tmp_path).json()["runs"][0]["numeric"]}
    assert stored[("local", "int8")]["ok"] and stored[("local", "int8")]["first_op_index"] is None
    # a second run is cached up to validate, deploy is a no-op, benchmarks run again
    r2 = edgeq("run", write_pipeline(FLEET), "--json", cwd=tmp_path)
    d2 = r2.json()
    assert d2["stages"]["train"]["cached"] and d2["stages"]["deploy"]["results"]["int8"]["devices"][0]["status"] == "ok"
    assert d2["stages"]["deploy"]["results"]["int8"]["bytes_uploaded"] == 0
    assert len(d2["benchmarks"]) == 4


def test_gate_failure_skips_deploy(edgeq, write_pipeline, tmp_path):
    r = edgeq("run", write_pipeline({**FLEET, "validate": {"gates": {"min_accuracy": 1.0}}}), "--json", cwd=tmp_path)
    assert_clean_error(r, 7, "validation gates failed")
    assert r.json()["stages"]["deploy"]["skipped"].startswith("validation gates failed")


def test_fleet_config_errors(edgeq, write_pipeline, tmp_path):
    r = edgeq("run", write_pipeline({**FLEET, "benchmark": {"targets": ["local"], "variants": ["int4"]}}), cwd=tmp_path)
    assert_clean_error(r, 3, "unknown variant(s) ['int4']")
    r = edgeq("run", write_pipeline({"benchmark": {"runs": 5}}), cwd=tmp_path)
    assert_clean_error(r, 3, "benchmark.targets is required")
    r = edgeq("run", write_pipeline({"deploy": {"targets": ["no-such-board"]}}), cwd=tmp_path)
    assert r.code in (3, 8) and "no-such-board" in r.stderr and "Traceback" not in r.stderr
