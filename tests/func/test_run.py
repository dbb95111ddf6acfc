"""edgeq run end to end with real TensorFlow and a real TFLite interpreter, on small data."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgeq.testing.common import assert_clean_error


def _interp(path):
    from ai_edge_litert.interpreter import Interpreter

    i = Interpreter(model_path=str(path))
    i.allocate_tensors()
    return i


def test_run_json_manifest_and_artifacts(edgeq, write_pipeline, home):
    p = write_pipeline(
        {
            "quantize": {
                "variants": [
                    {"type": "fp32"},
                    {"type": "int8", "calibration_samples": 50},
                    {"type": "dynamic"},
                    {"type": "float16"},
                    {"type": "int16x8", "calibration_samples": 20},
                    {"type": "int8", "name": "int8-uint8io", "io": "uint8", "calibration_samples": 50},
                    {"type": "int8", "name": "int8-floatio", "io": "float", "calibration_samples": 50},
                ]
            }
        }
    )
    r = edgeq("run", p, "--json")
    assert r.code == 0, r.stderr
    doc = r.json()  # stdout is exactly one JSON document; logs went to stderr
    assert "train: running" in r.stderr
    assert doc["status"] == "ok" and doc["pipeline"] == "tiny"
    assert doc["runtime"]["name"] == "ai-edge-litert" and doc["runtime"]["version"]
    v = doc["variants"]
    assert set(v) == {"fp32", "int8", "dynamic", "float16", "int16x8", "int8-uint8io", "int8-floatio"}
    assert v["fp32"]["accuracy"] > 0.8
    for entry in v.values():
        assert entry["test_samples"] == 150
        assert Path(entry["artifact"]).exists()
        assert entry["size_ratio"] == pytest.approx(entry["size_bytes"] / v["fp32"]["size_bytes"], rel=1e-3)
        assert entry["accuracy_drop"] == pytest.approx(v["fp32"]["accuracy"] - entry["accuracy"], abs=1e-6)
    assert v["int8"]["size_bytes"] < 0.6 * v["fp32"]["size_bytes"]
    # the int8 artifact really is full-integer with int8 I/O; io options are honoured
    i = _interp(v["int8"]["artifact"])
    assert i.get_input_details()[0]["dtype"] == np.int8 and i.get_output_details()[0]["dtype"] == np.int8
    assert _interp(v["int8-uint8io"]["artifact"]).get_input_details()[0]["dtype"] == np.uint8
    assert _interp(v["int8-floatio"]["artifact"]).get_input_details()[0]["dtype"] == np.float32
    assert _interp(v["int16x8"]["artifact"]).get_input_details()[0]["dtype"] == np.float32
    # manifest on disk: inputs, params, stage outputs, metrics, library versions
    m = json.loads((Path(doc["run_dir"]) / "manifest.json").read_text())
    assert m["status"] == "ok" and m["run_id"] == doc["run_id"]
    assert m["versions"]["tensorflow"].startswith("2.21") and m["versions"]["edgeq"]
    assert m["inputs"]["data"] and m["pipeline_sha256"] and m["params"]["train"]["epochs"] == 8
    assert set(m["stages"]) == {"train", "quantize", "validate"}
    assert m["stages"]["train"]["cached"] is False and m["stages"]["train"]["epochs_run"] == 8


def test_cached_rerun_and_force(edgeq, write_pipeline):
    p = write_pipeline()
    first = edgeq("run", p, "--json")
    assert first.code == 0, first.stderr
    second = edgeq("run", p, "--json")
    assert second.code == 0
    d2 = second.json()
    assert d2["run_id"] != first.json()["run_id"]
    assert d2["stages"]["train"]["cached"] is True
    assert all(s["cached"] for s in d2["stages"]["quantize"].values())
    assert all(s["cached"] for s in d2["stages"]["validate"].values())
    assert "train: cached" in second.stderr
    assert d2["variants"]["int8"]["accuracy"] == first.json()["variants"]["int8"]["accuracy"]
    # human output says what was reused
    human = edgeq("run", p)
    assert "reused from cache: train, quantize, validate" in human.stderr and "int8" in human.stdout
    forced = edgeq("run", p, "--force", "--json")
    assert forced.code == 0 and forced.json()["stages"]["train"]["cached"] is False
    # a changed param invalidates only what depends on it
    p2 = write_pipeline({"quantize": {"variants": [{"type": "fp32"}, {"type": "int8", "calibration_samples": 60}]}})
    d3 = edgeq("run", p2, "--json").json()
    assert d3["stages"]["train"]["cached"] is True
    assert d3["stages"]["quantize"]["fp32"]["cached"] is True and d3["stages"]["quantize"]["int8"]["cached"] is False


def test_cached_run_does_not_import_tensorflow(write_pipeline, home, edgeq):
    p = write_pipeline()
    assert edgeq("run", p).code == 0
    code = (
        "import sys; from edgeq.pipeline.runner import run_pipeline; "
        f"r = run_pipeline({str(p)!r}); assert r.stages.train.cached; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**__import__("os").environ, "EDGEQ_HOME": str(home)}
    )
    assert out.stdout.strip() == "False False", out.stderr


def test_killed_mid_stage_leaves_nothing_and_next_run_resumes(write_pipeline, home, edgeq):
    p = write_pipeline({"train": {"epochs": 400, "batch_size": 8}})
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeq", "run", str(p)],
        stderr=subprocess.PIPE,
        text=True,
        stdout=subprocess.DEVNULL,
        env={**__import__("os").environ, "EDGEQ_HOME": str(home)},
    )
    deadline = time.time() + 120
    for line in proc.stderr:
        if "train epoch 2/" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    train_dir = home / "cache" / "train"
    assert not train_dir.exists() or not any(train_dir.iterdir()), "a killed stage must not publish its output"
    assert any((home / "cache" / ".tmp").iterdir())  # the half-built folder is only in .tmp
    # the next run (a shorter training so the test stays fast) cleans the stale temp folder
    p = write_pipeline({"train": {"epochs": 2, "batch_size": 32}})
    r = edgeq("run", p, "--json")
    assert r.code == 0, r.stderr
    assert not any((home / "cache" / ".tmp").iterdir())
    # killed during quantize: the next run reuses train
    p = write_pipeline(
        {
            "train": {"epochs": 2, "batch_size": 32},
            "quantize": {
                "variants": [{"type": "fp32"}]
                + [{"type": "int8", "name": f"q{i}", "calibration_samples": 300 + i} for i in range(6)]
            },
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeq", "run", str(p)],
        stderr=subprocess.PIPE,
        text=True,
        stdout=subprocess.DEVNULL,
        env={**__import__("os").environ, "EDGEQ_HOME": str(home)},
    )
    for line in proc.stderr:
        if "quantize q1: running" in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the killed run's manifest says how far it got: it is written at every stage boundary
    killed = [json.loads(m.read_text()) for m in (home / "runs").glob("*/manifest.json")]
    killed = [m for m in killed if m["status"] == "running" and "q0" in str(m["params"]["quantize"])]
    assert len(killed) == 1 and killed[0]["stages"]["train"]["key"] and "quantize" not in killed[0]["stages"]
    assert list(killed[0]["variants"]) == ["fp32", "q0"] and killed[0]["pid"] == proc.pid
    r = edgeq("run", p, "--json")
    assert r.code == 0
    d = r.json()
    assert d["stages"]["train"]["cached"] is True and d["stages"]["quantize"]["q0"]["cached"] is True
    for v in d["variants"].values():
        _interp(v["artifact"])  # every published artifact loads


def test_gate_failure_exit_code_and_json(edgeq, write_pipeline):
    p = write_pipeline({"validate": {"gates": {"min_accuracy": 0.999, "max_size_bytes": 100}}})
    r = edgeq("run", p, "--json")
    assert_clean_error(r, 7, "validation gates failed", "min_accuracy", "max_size_bytes")
    doc = r.json()  # still one JSON document with what was measured
    assert doc["status"] == "gate_failed" and doc["gates_failed"]
    assert doc["variants"]["int8"]["gates"]["passed"] is False
    r = edgeq("run", p)
    assert_clean_error(r, 7, "validation gates failed")
    assert "FAIL" in r.stdout


def test_drop_gate_per_variant_override(edgeq, write_pipeline):
    p = write_pipeline(
        {
            "quantize": {
                "variants": [{"type": "fp32"}, {"type": "int8", "calibration_samples": 50, "gates": {"max_accuracy_drop": 1.0}}]
            },
            "validate": {"gates": {"max_accuracy_drop": 0.0, "min_accuracy": 0.1}},
        }
    )
    r = edgeq("run", p, "--json")
    assert r.code == 0, r.stderr  # the variant's own gates replace the pipeline-wide ones


def test_unquantizable_op_is_named(edgeq, write_pipeline, tmp_path):
    (tmp_path / "sinmodel.py").write_text(
        "import keras, tensorflow as tf\n"
        "class Sin(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return tf.math.sin(x)\n"
        "def build(input_shape, num_classes):\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(16),\n"
        "                             Sin(), keras.layers.Dense(num_classes, activation='softmax')])\n"
    )
    p = write_pipeline({"model": {"factory": "sinmodel:build"}, "train": {"epochs": 1}})
    r = edgeq("run", p)
    assert_clean_error(r, 6, "SIN", "int8")
    # the failed variant published nothing; the fp32 variant before it did
    assert len(list((tmp_path / "home" / "cache" / "quantize").glob("*/model.tflite"))) == 1


def test_user_models_keras_file_factory_and_savedmodel(edgeq, write_pipeline, tmp_path):
    import keras
    import tensorflow as tf

    m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    m.save(tmp_path / "mine.keras")
    r = edgeq("run", write_pipeline({"model": {"path": "mine.keras"}, "train": {"epochs": 10, "learning_rate": 0.01}}), "--json")
    assert r.code == 0, r.stderr
    assert r.json()["variants"]["fp32"]["accuracy"] > 0.5
    (tmp_path / "fac.py").write_text(
        "import keras\ndef make(num_classes):\n"
        "    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),\n"
        "                             keras.layers.Dense(num_classes, activation='softmax')])\n"
    )
    r = edgeq("run", write_pipeline({"model": {"factory": "fac:make"}, "train": {"epochs": 2}}), "--json")
    assert r.code == 0, r.stderr
    m.export(str(tmp_path / "sm"))
    r = edgeq("run", write_pipeline({"model": {"path": "sm"}, "train": {"epochs": 0}}), "--json")
    assert r.code == 0, r.stderr
    assert r.json()["stages"]["train"]["skipped"] == "SavedModel input"
    r = edgeq("run", write_pipeline({"model": {"path": "sm"}, "train": {"epochs": 2}}))
    assert_clean_error(r, 3, "SavedModel", "epochs: 0")
    del tf


def test_help_and_version_are_fast_paths():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom edgeq.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
        "assert 'run' in r.output\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'paramiko', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
    v = subprocess.run([sys.executable, "-m", "edgeq", "--version"], capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.startswith("edgeq ")
