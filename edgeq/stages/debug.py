"""Per-layer quantization error of an int8 model (TFLite's QuantizationDebugger).

The debugger runs a model in which every quantized op is followed by a NumericVerify op that also runs
the op in float on the same (dequantized) input, so each layer's error is its own, not the sum of the
layers before it. RMSE/scale is the error in units of the layer's quantization step: about 0.29 (the
rounding error of a uniform quantizer) is as good as it gets; much more means the layer's range is
badly covered (outliers, skewed activations).
"""

from __future__ import annotations

import csv
import io
import math
import warnings

import numpy as np

from edgeq.config import VariantSpec
from edgeq.records.run import LayerError, LayerErrors
from edgeq.stages.quiet import captured_output, import_tensorflow

DEBUG_SAMPLES = 200  # enough for stable per-layer statistics; the debug model runs batch 1, op by op
TOP = 5


def short_name(tensor: str) -> str:
    """'model/conv2d_1/Relu;model/conv2d_1/BiasAdd;...' -> 'conv2d_1' (the Keras layer), else the name.

    A fused op's name lists the layers folded into it first; its own layer (MatMul, convolution) comes last.
    """
    last = tensor.split(";")[-1]
    parts = last.split("/")
    return parts[-2] if len(parts) >= 3 else last


def debug_model(calibrated: bytes, variant: VariantSpec, denylist: tuple[str, ...] | list[str] = ()) -> bytes:
    import_tensorflow()
    from tensorflow.lite.python.convert import mlir_quantize

    with captured_output():
        return mlir_quantize(
            calibrated,
            disable_per_channel=not variant.per_channel,
            enable_numeric_verify=True,
            denylisted_nodes=list(denylist) or None,
        )


def layer_errors(
    calibrated: bytes, variant: VariantSpec, x: np.ndarray, denylist: tuple[str, ...] | list[str] = (), top: int = TOP
) -> LayerErrors:
    """Per-layer error statistics of the int8 model made from `calibrated` (minus the denylisted layers).

    samples; layers in graph order; worst: the top ones by rmse/scale. Each layer has op, layer (short name),
    tensor (full name, usable in a denylist), scale, zero_point, rmse_scale, mean_error, max_abs_error,
    num_elements.
    """
    tf = import_tensorflow()
    blob = debug_model(calibrated, variant, denylist)
    x = np.asarray(x[:DEBUG_SAMPLES], dtype=np.float32)

    def data():
        for i in range(len(x)):
            yield [x[i : i + 1]]

    with warnings.catch_warnings(), captured_output():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation warning (the debugger uses it)
        dbg = tf.lite.experimental.QuantizationDebugger(quant_debug_model_content=blob, debug_dataset=data)
        dbg.run()
        buf = io.StringIO()
        dbg.layer_statistics_dump(buf)  # the only public view that pairs each layer with its tensor name and scale
    layers: list[LayerError] = []
    for row in csv.DictReader(io.StringIO(buf.getvalue())):
        scale = float(row["scale"])
        mse = float(row["mean_squared_error"])
        layers.append(
            LayerError(
                op=row["op_name"],
                layer=short_name(row["tensor_name"]),
                tensor=row["tensor_name"],
                scale=scale,
                zero_point=int(float(row["zero_point"])),
                rmse_scale=round(math.sqrt(mse) / scale, 4) if scale > 0 else None,
                mean_error=float(row["mean_error"]),
                max_abs_error=float(row["max_abs_error"]),
                num_elements=int(float(row["num_elements"])),
            )
        )
    worst = sorted((la for la in layers if la.rmse_scale is not None), key=lambda la: -(la.rmse_scale or 0))[:top]
    return LayerErrors(samples=int(len(x)), layers=tuple(layers), worst=tuple(worst))
