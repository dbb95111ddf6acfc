"""Per-op profiles where a user reads them: kernel changes in `compare` and the report, the report's per-op section
(where the time goes; a quantized variant beside fp32 op by op), with board text escaped."""

from __future__ import annotations

import pytest

from edgeq.report.opsview import pair_counts, pair_ops, variant_pairs
from edgeq.results import query
from edgeq.results.compare import compare_runs
from edgeq.results.ops import aggregate
from edgeq.results.opstore import record_profiles
from edgeq.results.record import load_manifest, record_run
from edgeq.testing.opsprofiles import F32, QC8, fp32_rows, int8_rows, profile
from edgeq.testing.promfarm import synthetic_manifest


def test_fp32_and_int8_ops_pair_by_exact_model_op_then_by_node_order():
    ref, q = profile("fp32", fp32_rows()), profile("int8", int8_rows())
    assert variant_pairs([q, ref], {"fp32": "fp32", "int8": "int8"}) == [(ref, q)]
    pairs = pair_ops(ref, q)
    how = {(p.ref.node if p.ref else None, p.other.node if p.other else None): p.how for p in pairs}
    assert how[("op3", "op3")] == "model op"
    assert how[("s0/0", "s0/1")] == how[("s0/1", "s0/2")] == how[("s0/2", "s0/3")] == "node order"
    assert how[(None, "s0/0")] == "one side"  # the Convert int8 adds
    assert pair_counts(pairs) == "1 by exact model op, 3 by node order (op type alignment), 1 on one side only"
    worst = max(pairs, key=lambda p: p.loss_us)
    assert worst.ref is not None and worst.ref.node == "s0/0" and worst.ratio == pytest.approx(4.17)


@pytest.fixture
def runs(tmp_path):
    db = tmp_path / "history.db"
    for run_id, day in (("b", "01"), ("c", "02")):
        record_run(load_manifest(synthetic_manifest(run_id, started=f"2026-01-{day}T02:30:00+00:00")), db)
    return db


def test_compare_shows_kernel_changes_only_when_both_runs_have_profiles(runs):
    c = compare_runs("b", "c", db_path=runs)
    assert c.kernel_changes is None and "kernel_changes" not in c.to_json()  # documents stay as they were
    record_profiles("b", [profile("int8", int8_rows())], runs)
    record_profiles("c", [profile("int8", [{**r, "kernel": F32} if r["op"] == "Convolution" else r for r in int8_rows()])], runs)
    c = compare_runs("b", "c", db_path=runs)
    assert [(k.node, k.base_kernel, k.candidate_kernel) for k in c.kernel_changes or ()] == [
        ("s0/1", QC8, F32),
        ("s0/2", QC8, F32),
    ]
    assert c.to_json()["kernel_changes"][0]["variant"] == "int8"


def test_the_report_shows_where_the_time_goes_int8_vs_fp32_and_kernel_changes_escaped(runs):
    from edgeq.report.html import render_stored

    evil = "<script>alert(1)</script> $x"
    record_profiles("b", [profile("int8", int8_rows())], runs)
    q = [{**r, "kernel": evil} if r["node"] == 1 and r["source"] == "xnnpack" else r for r in int8_rows()]
    why = {"ok": True, "kind": "unsupported", "reason": "tflite-runtime <b>", "fix": "x"}
    unsupported = aggregate("pi4", "int8", 1, [(1, why)])
    record_profiles("c", [profile("fp32", fp32_rows()), profile("int8", q), unsupported], runs)
    with query.open_for_reading(runs) as h:
        html, _ = render_stored(h, query.load(h, query.resolve(h, "c"), samples=True))
    assert "Where the time goes (per-op profiles)" in html
    assert "alt='where the time goes per op'" in html and "alt='int8 vs fp32 per op'" in html
    assert "int8 vs fp32 on pi5 (1 thr), op by op" in html
    assert "1 by exact model op, 3 by node order (op type alignment), 1 on one side only" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; $x" in html
    assert "not profiled: tflite-runtime &lt;b&gt;" in html
    assert "Kernel changes (same op, other kernel)" in html and QC8 in html


def test_compare_prints_kernel_changes_next_to_the_latency_table(runs, edgeq):
    record_profiles("b", [profile("int8", int8_rows())], runs)
    record_profiles("c", [profile("int8", [{**r, "kernel": F32} if r["node"] == 1 else r for r in int8_rows()])], runs)
    r = edgeq("compare", "b", "c", "--db", runs)
    assert r.code == 0, r.stderr
    want = f"kernel change: int8 on pi5 (1 thr): s0/1 Convolution: {QC8} -> {F32}"
    assert want in " ".join(r.stderr.split()), r.stderr
