"""model.tflite end to end: a float .tflite written by edgeq.tools.float_tflite (the tiny digits MLP), quantized
by the real LiteRT quantizer, validated, deployed and benchmarked on the local board (real agent)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeq.testing.common import REPO, TINY, assert_clean_error

DATA = TINY["data"]


@pytest.fixture(scope="module")
def float_tflite(tmp_path_factory) -> Path:
    """The tiny pipeline's trained MLP as a float .tflite, through the tool a user runs."""
    d = tmp_path_factory.mktemp("float")
    (d / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    env = {**os.environ, "EDGEQ_HOME": str(d / "home")}
    p = subprocess.run(
        [sys.executable, "-m", "edgeq.tools.float_tflite", "tiny.yaml", "out/tiny-float.tflite"],
        capture_output=True,
        text=True,
        cwd=d,
        env=env,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    assert "float32; model trained" in p.stdout
    return d / "out" / "tiny-float.tflite"


def _pipeline(tmp_path: Path, tflite: Path, variants: list, **extra) -> Path:
    doc = {"name": "from-tflite", "seed": 1, "data": DATA, "model": {"tflite": str(tflite)}}
    p = tmp_path / "from.yaml"
    p.write_text(yaml.safe_dump({**doc, "quantize": {"variants": variants}, **extra}, sort_keys=False))
    return p


def test_float_tflite_quantized_validated_deployed_and_benchmarked(edgeq, tmp_path, float_tflite):
    variants = [{"type": "fp32"}, {"type": "int8", "calibration_samples": 50}, {"type": "dynamic"}, {"type": "weight_only"}]
    fleet = {
        "deploy": {"targets": ["local"], "variants": ["int8"]},
        "benchmark": {"targets": ["local"], "runs": 10, "warmup": 1, "min_seconds": 0.05, "sessions": 1, "threads": [1]},
    }
    fleet["benchmark"] |= {"variants": ["fp32", "int8"], "accuracy_check": True}
    r = edgeq("run", _pipeline(tmp_path, float_tflite, variants, **fleet), "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["status"] == "ok" and doc["stages"]["train"]["skipped"] == "float .tflite input"
    v, q = doc["variants"], doc["stages"]["quantize"]
    assert Path(v["fp32"]["artifact"]).read_bytes() == float_tflite.read_bytes()  # the file itself is the baseline
    for k in ("int8", "dynamic", "weight_only"):
        assert q[k]["quantizer"].startswith("litert-quantizer "), q[k]
        assert v[k]["size_bytes"] < 0.6 * v["fp32"]["size_bytes"], (k, v[k]["size_bytes"])
        assert abs(v[k]["accuracy_drop"]) <= 0.03, (k, v[k]["accuracy"], v["fp32"]["accuracy"])
    assert v["fp32"]["accuracy"] >= 0.8 and q["int8"]["calibration_samples"] == 50
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=v["int8"]["artifact"])
    assert it.get_input_details()[0]["dtype"] == np.int8  # static int8: integer input, like the converter's io: int8
    assert Interpreter(model_path=v["weight_only"]["artifact"]).get_input_details()[0]["dtype"] == np.float32
    assert {(b["variant"], b["ok"]) for b in doc["benchmarks"]} == {("fp32", True), ("int8", True)}
    for a in doc["stages"]["benchmark_accuracy"]:
        assert a["ok"] and a["board_accuracy"] == a["validate_accuracy"], a


def test_missing_quantizer_names_the_extra_and_a_data_mismatch_is_named(edgeq, tmp_path, float_tflite):
    shadow = tmp_path / "shadow" / "litert_quantizer"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named litert_quantizer')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(shadow.parent), str(REPO), os.environ.get("PYTHONPATH", "")])}
    r = edgeq("run", _pipeline(tmp_path, float_tflite, [{"type": "fp32"}, {"type": "dynamic"}]), env=env)
    assert_clean_error(r, 12, "dynamic needs the LiteRT quantizer", "pip install 'edgeq[tflite-quant]'")
    np.savez(
        tmp_path / "x.npz",
        x_train=np.zeros((40, 5)),
        y_train=np.arange(40) % 2,
        x_test=np.zeros((20, 5)),
        y_test=np.arange(20) % 2,
    )
    npz = {"source": "npz", "path": str(tmp_path / "x.npz"), "max_train": 40, "max_test": 20}
    r = edgeq("run", _pipeline(tmp_path, float_tflite, [{"type": "fp32"}], data=npz))
    assert_clean_error(r, 5, "the model's input is [1, 8, 8, 1], the data's rows are [5]", "data.image_size")
