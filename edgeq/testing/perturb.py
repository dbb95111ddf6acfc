"""Models for the numeric check's tests and bench: a small int8 MLP, and a copy with one layer requantized wrong.

TensorFlow is imported here (test and bench side only). The perturbation rewrites one FULLY_CONNECTED's weight
scale in the flatbuffer (tensorflow.lite.tools.flatbuffer_utils): the weights stay, the kernel's requantization
multiplier changes, so that layer's output moves and every later layer inherits it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def small_int8_mlp(dest: Path, golden: Path, *, seed: int = 0, rows: int = 4) -> list[str]:
    """Write Input(16) -> Dense(12, relu) -> Dense(10, relu) -> Dense(4) as full-int8 TFLite and `rows` golden
    inputs (float32, the representative data's first rows). Returns the op names in execution order."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((16,))
    x = tf.keras.layers.Dense(12, activation="relu")(inp)
    x = tf.keras.layers.Dense(10, activation="relu")(x)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(4)(x))
    rep = np.random.RandomState(seed + 1).randn(64, 16).astype("float32")
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([r[None]] for r in rep)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    Path(dest).write_bytes(conv.convert())
    np.save(golden, rep[:rows])
    return ["FULLY_CONNECTED"] * 3


def perturb_weight_scale(src: Path, dest: Path, op_index: int, factor: float) -> str:
    """Copy `src` with op `op_index`'s weight scale multiplied by `factor`; the name of that op's output tensor."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(Path(src).read_bytes()))
    sg = model.subgraphs[0]
    op = sg.operators[op_index]
    w = sg.tensors[op.inputs[1]]
    w.quantization.scale = (np.asarray(w.quantization.scale) * factor).astype(np.float32)
    Path(dest).write_bytes(bytes(fu.convert_object_to_bytearray(model)))
    name = sg.tensors[op.outputs[0]].name
    return name.decode() if isinstance(name, bytes) else str(name)
