"""The results records: a manifest read at one boundary, rows that keep what the board reported. No network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeq.errors import StoreError
from edgeq.records.run import RunManifest
from edgeq.results import BenchmarkRow, load_manifest
from edgeq.results.quality import quality_note, quality_summary
from edgeq.results.record import Recordable

DATA = Path(__file__).resolve().parents[1] / "data"
REAL = DATA / "manifest-v0.1.json"


def test_a_real_manifest_is_read_as_records():
    r = load_manifest(REAL)
    assert r.manifest.run_id == "20261127T195332Z-ab72e4" and r.manifest_path == str(REAL)
    assert [(b.device, b.variant, b.threads) for b, _ in r.benchmarks] == [("local", "fp32", 1), ("local", "int8", 1)]
    assert all(isinstance(raw, str) and raw.endswith(".json") for _, raw in r.benchmarks)  # the agent's file, by path
    assert r.params.drop_budget("int8") == 0.02
    same = Recordable.of(RunManifest.from_json(json.loads(REAL.read_text())))  # a record needs no reading
    assert same.manifest == r.manifest and same.manifest_path is None


def test_a_manifest_of_the_wrong_shape_names_the_field(tmp_path):
    doc = json.loads(REAL.read_text())
    doc["benchmarks"][1]["peak_rss_bytes"] = "a lot"
    with pytest.raises(
        StoreError, match=r"run manifest of run 20261127T195332Z-ab72e4 has a bad field 'benchmarks\.1\.peak_rss_bytes'"
    ):
        load_manifest(doc)
    doc = json.loads(REAL.read_text())
    doc["params"]["validate"]["gates"]["max_accuracy_drop"] = "two points"
    with pytest.raises(StoreError, match=r"has a bad field 'params\.validate\.gates\.max_accuracy_drop'"):
        load_manifest(doc)
    doc = json.loads(REAL.read_text())
    newer = {**doc, "later": 1, "variants": {k: {**v, "later": 2} for k, v in doc["variants"].items()}}
    assert load_manifest(newer).manifest.to_json() == newer  # a newer edgeq's keys are kept, not refused
    f = tmp_path / "manifest.json"
    f.write_text(json.dumps({**doc, "variants": {"int8": {"type": "int8"}}}))
    with pytest.raises(StoreError, match=rf"run manifest {f} has a bad field 'variants\.int8\.artifact'"):
        load_manifest(tmp_path)  # a run folder


def test_quality_summary_and_note():
    v = RunManifest.from_json(json.loads(REAL.read_text())).variants["int8"]
    q = quality_summary(v)
    assert [w.layer for w in q.worst_layers] == ["dense_1_2", "dense_1", "StatefulPartitionedCall_1:0"][: len(q.worst_layers)]
    assert set(q.to_json()) == {"worst_layers"}  # no QAT, no mixed precision: keys left out, as the history stores them
    assert quality_note(q).startswith("worst layer dense_1_2 (FULLY_CONNECTED) RMSE/scale 0.38")
    assert quality_summary({"type": "int8"}).to_json() == {}  # a variant without an artifact: nothing to analyse


def test_a_benchmark_row_keeps_the_board_facts_as_reported():
    row = {
        "id": 1,
        "device": "pi",
        "variant": "int8",
        "ok": True,
        "board": json.dumps({"arch": "aarch64", "throttled": {"raw": "0x0", "flags": 0}}),
        "delegate": json.dumps({"requested": "xnnpack"}),
        "throttled": json.dumps({"raw": "0x0", "flags": 0}),
    }
    b = BenchmarkRow.from_row(row)
    assert b.board.arch == "aarch64" and b.board.throttled.flags == 0 and b.board.kernel is None
    doc = b.to_json()
    assert doc["board"] == {"arch": "aarch64", "throttled": {"raw": "0x0", "flags": 0}}  # no invented null keys
    assert doc["delegate"] == {"requested": "xnnpack"} and "samples_s" not in doc
