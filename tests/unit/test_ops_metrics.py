"""Per-op profiles in the Prometheus exposition: the 10 slowest ops per board x variant x threads (rank bounded),
coverage, kernel fingerprint info, supported or not; nothing for runs without profiles. Checked by promtool."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from edgeq import metrics
from edgeq.metrics.families import OPS_TOP
from edgeq.results import load_manifest, record_run
from edgeq.results.ops import aggregate
from edgeq.results.opstore import record_profiles
from edgeq.testing.opsprofiles import F32, int8_rows, profile, row
from edgeq.testing.promfarm import synthetic_manifest


def _parse(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def test_top_ops_coverage_and_fingerprint_are_exported_bounded(tmp_path):
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("r0", started="2026-01-01T02:30:00+00:00")), db)
    text = metrics.exposition(metrics.run_registry("latest", db)[0]).decode()
    assert "edgeq_op_" not in text and "edgeq_kernel_fingerprint" not in text  # no profiles: no empty families
    record_run(load_manifest(synthetic_manifest("r1", started="2026-01-02T02:30:00+00:00")), db)
    many = [row(i, "Convolution", F32, 10.0 + i, index=i) for i in range(25)]  # 25 ops: only 10 exported
    why = {"ok": True, "kind": "unsupported", "reason": "tflite-runtime 2.14.0 has no profiler hook", "fix": "x"}
    record_profiles(
        "r1",
        [profile("fp32", many), profile("int8", int8_rows()), aggregate("pi4", "int8", 1, [(1, why)])],
        db,
    )
    text = metrics.exposition(metrics.run_registry("latest", db)[0]).decode()
    parsed = _parse(text)
    ops = parsed["edgeq_op_latency_seconds"].samples
    fp32 = sorted((int(s.labels["rank"]), s.labels["op"], s.value) for s in ops if s.labels["variant"] == "fp32")
    assert len(fp32) == OPS_TOP == 10 and fp32[0][:2] == (1, "s0/24 Convolution")
    assert fp32[0][2] == pytest.approx(34e-6) and fp32[-1][:2] == (10, "s0/15 Convolution")
    assert {s.labels["rank"] for s in ops} <= {str(i) for i in range(1, OPS_TOP + 1)}
    int8 = {s.labels["op"]: s.value for s in ops if s.labels["variant"] == "int8"}
    assert len(int8) == 5 and int8["s0/1 Convolution"] == pytest.approx(417e-6)
    cov = {s.labels["variant"]: s.value for s in parsed["edgeq_op_coverage_ratio"].samples}
    assert set(cov) == {"fp32", "int8"} and 0.5 < cov["int8"] < 1.0
    info = [s.labels for s in parsed["edgeq_kernel_fingerprint_info"].samples]
    assert {i["runtime"] for i in info} == {"litert-compiled 2.3.0"} and all(len(i["fingerprint"]) == 16 for i in info)
    sup = {(s.labels["device"], s.labels["variant"]): s.value for s in parsed["edgeq_op_profile_supported"].samples}
    assert sup == {("pi5", "fp32"): 1.0, ("pi5", "int8"): 1.0, ("pi4", "int8"): 0.0}
    share = {s.labels["variant"]: s.value for s in parsed["edgeq_op_top_share_ratio"].samples}
    assert share["int8"] == pytest.approx(cov["int8"], rel=1e-3)  # 5 ops: the top 10 are all of them
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) not installed")
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "edgeq_op" not in p.stdout + p.stderr  # no lint complaint about the new families
