"""Quantization-aware training (train.qat): real tf-keras + tfmot child process, real TFLite interpreter."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeq.testing.common import assert_clean_error

DIGITS = {"source": "sklearn-digits", "max_train": 1500, "max_test": 300}
CNN = {"builtin": "cnn", "filters": [8, 16], "dense": 32}
TRAIN = {"epochs": 8, "batch_size": 32, "learning_rate": 0.005}


def _interp(path):
    from ai_edge_litert.interpreter import Interpreter

    i = Interpreter(model_path=str(path))
    i.allocate_tensors()
    return i


def _digits_test(max_test=300):
    from pathlib import Path

    from edgeq.config import DataSpec
    from edgeq.data import datasets as data

    return data.load(DataSpec(**{**DIGITS, "max_test": max_test}), Path("."), 1)


@pytest.mark.slow  # five runs, two of them QAT child processes: ~40 s idle, ~85 s on a loaded 2-core box
def test_qat_int8_runs_in_interpreter_close_to_fp32_and_is_cached(edgeq, write_pipeline, home):
    # 1) a plain PTQ run first: turning QAT on afterwards must reuse the trained float model
    p = write_pipeline({"data": DIGITS, "model": CNN, "train": TRAIN})
    r = edgeq("run", p, "--json")
    assert r.code == 0, r.stderr
    assert "int8-qat" not in r.json()["variants"]

    p = write_pipeline({"data": DIGITS, "model": CNN, "train": {**TRAIN, "qat": {"epochs": 1}}})
    r = edgeq("run", p, "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert doc["stages"]["train"]["cached"] is True
    assert doc["stages"]["quantize"]["int8"]["cached"] is True
    q = doc["stages"]["quantize"]["int8-qat"]
    assert q["cached"] is False and q["qat"] is True and q["qat_epochs"] == 1
    assert q["calibration_samples"] == 0  # no representative dataset: QAT learned the ranges
    assert q["transfer_max_diff"] <= 1e-4  # the tf-keras copy reproduced the Keras 3 model before QAT
    v = doc["variants"]
    assert v["int8-qat"]["type"] == "int8" and v["int8-qat"]["qat"] is True
    assert v["int8-qat"]["accuracy"] > 0.5  # chance is 0.1
    assert abs(v["int8-qat"]["accuracy_drop"]) <= 0.03, v
    assert v["int8-qat"]["size_ratio"] < 0.5
    assert "qat epoch 1/1" in r.stderr

    # 2) the artifact itself: full-integer int8 in a real interpreter, same accuracy as the manifest says
    from edgeq.stages import interpreter as rt
    from edgeq.stages.convert import float_ops
    from edgeq.stages.validate import predict

    art = v["int8-qat"]["artifact"]
    i = _interp(art)
    assert i.get_input_details()[0]["dtype"] == np.int8 and i.get_output_details()[0]["dtype"] == np.int8
    with open(art, "rb") as f:
        assert float_ops(f.read()) == []
    ds = _digits_test()
    acc = float(np.mean(predict(rt.pick(), art, ds.x_test) == ds.y_test))
    assert acc == pytest.approx(v["int8-qat"]["accuracy"])

    # 3) rerun: every stage cached, the same bytes
    r2 = edgeq("run", p, "--json")
    assert r2.code == 0, r2.stderr
    d2 = r2.json()
    assert d2["stages"]["quantize"]["int8-qat"]["cached"] is True
    assert d2["variants"]["int8-qat"]["sha256"] == v["int8-qat"]["sha256"]
    assert "qat int8-qat: cached" in r2.stderr

    # 4) a different qat setting is a different stage key; the float model is still reused
    p3 = write_pipeline({"data": DIGITS, "model": CNN, "train": {**TRAIN, "qat": {"epochs": 1, "learning_rate": 0.0002}}})
    d3 = edgeq("run", p3, "--json").json()
    assert d3["stages"]["train"]["cached"] is True and d3["stages"]["quantize"]["int8-qat"]["cached"] is False
    assert d3["stages"]["quantize"]["int8-qat"]["qat_learning_rate"] == 0.0002


def test_qat_variant_options_per_tensor_and_float_io(edgeq, write_pipeline):
    variants = [{"type": "fp32"}, {"type": "int8", "name": "qat-pt", "qat": True, "per_channel": False, "io": "float"}]
    p = write_pipeline(
        {
            "data": DIGITS,
            "model": CNN,
            "train": {**TRAIN, "qat": {"epochs": 1, "batch_size": 64}},
            "quantize": {"variants": variants},
        }
    )
    r = edgeq("run", p, "--json")
    assert r.code == 0, r.stderr
    doc = r.json()
    assert sorted(doc["variants"]) == ["fp32", "qat-pt"]  # a listed qat variant replaces the automatic one
    assert doc["stages"]["quantize"]["qat-pt"]["qat_batch_size"] == 64
    from ai_edge_litert.interpreter import Interpreter

    # the flatbuffer's own scales: after allocate_tensors() the runtime reports FULLY_CONNECTED weights
    # with one (repeated) scale per output channel even when the file has one per tensor
    i = Interpreter(model_path=doc["variants"]["qat-pt"]["artifact"])
    assert i.get_input_details()[0]["dtype"] == np.float32
    per_axis = [
        t["name"] for t in i.get_tensor_details() if t["dtype"] == np.int8 and len(t["quantization_parameters"]["scales"]) > 1
    ]
    assert per_axis == []  # one scale per weight tensor, convolutions included
    assert doc["variants"]["qat-pt"]["accuracy"] > 0.5


def test_qat_model_that_cannot_move_to_tf_keras_is_a_clear_error(edgeq, write_pipeline, tmp_path, home):
    (tmp_path / "custom.py").write_text(
        "import keras\n"
        "class Halve(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return x * 0.5\n"
        "def build(input_shape, num_classes):\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(16),\n"
        "                             Halve(), keras.layers.Dense(num_classes, activation='softmax')])\n"
        "def residual(input_shape, num_classes):\n"
        "    x = inp = keras.Input(input_shape)\n"
        "    x = keras.layers.Flatten()(x)\n"
        "    h = keras.layers.Dense(64, activation='relu')(x)\n"
        "    x = keras.layers.Add()([x, h])\n"
        "    return keras.Model(inp, keras.layers.Dense(num_classes, activation='softmax')(x))\n"
    )
    only_fp32 = {"variants": [{"type": "fp32"}]}
    p = write_pipeline(
        {"model": {"factory": "custom:build"}, "train": {"epochs": 1, "qat": {"epochs": 1}}, "quantize": only_fp32}
    )
    r = edgeq("run", p)
    assert_clean_error(r, 5, "int8-qat", "Halve", "custom layer", "qat_layer", "PTQ int8")
    assert not list((home / "cache").glob("qat/*/model.tflite"))  # nothing half-built is trusted later

    p = write_pipeline(
        {"model": {"factory": "custom:residual"}, "train": {"epochs": 1, "qat": {"epochs": 1}}, "quantize": only_fp32},
        name="res.yaml",
    )
    r = edgeq("run", p, "--json")
    assert_clean_error(r, 5, "int8-qat", "chain of layers", "add")
    assert json.loads(r.stdout)["exit_code"] == 5


HOOKED = """
import keras

class Halve(keras.layers.Layer):
    def call(self, x):
        return x * 0.5

def build(input_shape, num_classes):
    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"),
                             Halve(), keras.layers.Dense(num_classes, activation="softmax")])

def qat_layer(layer, tf_keras, tfmot):
    if type(layer).__name__ != "Halve":
        return None
    q = tfmot.quantization.keras

    class HalveTK(tf_keras.layers.Layer):
        def call(self, x):
            return x * 0.5

    class OutputOnly(q.QuantizeConfig):  # no weights; quantize what the layer outputs
        def get_weights_and_quantizers(self, layer):
            return []
        def get_activations_and_quantizers(self, layer):
            return []
        def set_quantize_weights(self, layer, w):
            pass
        def set_quantize_activations(self, layer, a):
            pass
        def get_output_quantizers(self, layer):
            return [q.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]
        def get_config(self):
            return {}

    return q.quantize_annotate_layer(HalveTK(name=layer.name), OutputOnly())
"""


def test_qat_custom_layer_through_the_factory_hook(edgeq, write_pipeline, tmp_path):
    (tmp_path / "hooked.py").write_text(HOOKED)
    p = write_pipeline(
        {
            "model": {"factory": "hooked:build"},
            "train": {"epochs": 8, "learning_rate": 0.005, "qat": {"epochs": 1}},
            "data": DIGITS,
        }
    )
    r = edgeq("run", p, "--json")
    assert r.code == 0, r.stderr
    v = r.json()["variants"]
    with open(v["int8-qat"]["artifact"], "rb") as f:
        from edgeq.stages.convert import float_ops

        assert float_ops(f.read()) == []
    assert v["int8-qat"]["accuracy"] > 0.5 and abs(v["int8-qat"]["accuracy_drop"]) <= 0.03, v


@pytest.mark.parametrize(
    "overrides, needles",
    [
        (
            {"quantize": {"variants": [{"type": "fp32", "qat": True}]}, "train": {"epochs": 1, "qat": {"epochs": 1}}},
            ["quantize.variants[0]", "int8 variants only"],
        ),
        ({"quantize": {"variants": [{"type": "int8", "qat": True}]}}, ["train.qat is not set"]),
        ({"train": {"qat": {}}}, ["train.qat.epochs", "required"]),
        (
            {"quantize": {"variants": [{"type": "int8", "qat": True, "accuracy_budget": 0.01}]}, "train": {"qat": {"epochs": 1}}},
            ["quantize.variants[0]", "PTQ int8"],
        ),
        ({"train": {"qat": {"epochs": 1, "learning_rate": 0}}}, ["train.qat.learning_rate"]),
    ],
)
def test_qat_config_errors(edgeq, write_pipeline, overrides, needles):
    assert_clean_error(edgeq("run", write_pipeline(overrides)), 3, *needles)


# the child process itself (progress relay, Ctrl-C, a killed parent): tests/func/test_child_process.py
