"""Report details a reader relies on: legend labels never collide, empty columns are left out, the tail is counted."""

from __future__ import annotations

from edgeq.report.htmlkit import _table
from edgeq.report.plots import _labels, _n_label
from edgeq.results.rows import BenchmarkRow


def _row(**kw) -> BenchmarkRow:
    base = {"id": 1, "device": "pi5", "variant": "int8", "threads": 1, "ok": True}
    return BenchmarkRow.model_validate({**base, **kw})


def test_labels_unique_even_for_the_same_variant_and_threads():
    rows = [_row(runtime_name="litert"), _row(runtime_name="tflite-runtime"), _row(runtime_name="litert"), _row(device="pi4")]
    labels = _labels(rows)
    pairs = [(r.device, t) for r, t in zip(rows, labels, strict=True)]
    assert len(set(pairs)) == len(pairs), labels
    assert labels[0] != labels[2] and labels[1].endswith("tflite-runtime"), labels
    assert _labels([_row(), _row(variant="fp32")]) == ["int8 · 1 thr", "fp32 · 1 thr"]  # no clutter when unique


def test_empty_columns_are_left_out_and_filled_ones_kept():
    html = _table(["device", "W", "status"], [["pi5", "", "ok"], ["pi4", None, "ok"]])
    assert "<th>W</th>" not in html and "<th>device</th>" in html and "<th>status</th>" in html
    assert html.count("<td>") == 4
    assert "<th>W</th>" in _table(["device", "W"], [["pi5", ""], ["pi4", "2.1"]])


def test_legend_counts_inferences_timed_and_the_tail_beyond_the_axis():
    b = _row(p50_s=0.001, count=50_000, samples_stride=10)
    text = _n_label(b, kept=5000, above=25, top=9876.0, unit="µs")
    assert "n=50,000 timed" in text and "every 10th drawn" in text and "25 beyond the axis" in text and "9876 µs" in text
    assert "p50 1 ms" in _n_label(b, kept=5000, above=0, top=9.876, unit="ms")  # the plot's unit (edgeq.units)
    assert "beyond" not in _n_label(_row(p50_s=0.001, count=10), kept=10, above=0, top=1.0, unit="ms")
