"""Converter primitives: a Keras model or SavedModel to TFLite bytes for one variant, requantizing a
calibrated model, and reading which ops a converted model computes in float.

The stages that make .tflite files (quantize, edgetpu, mixed, qat) build on these; this module
imports none of them.
"""

from __future__ import annotations

import re
from typing import cast

import numpy as np

from edgeq.config import VariantSpec
from edgeq.errors import QuantizeError
from edgeq.inspect import reader
from edgeq.inspect.report import FLOAT
from edgeq.progress import tracker
from edgeq.stages.calibrate import recalibrate
from edgeq.stages.quiet import captured_output, import_tensorflow
from edgeq.stages.variants import kind

_OP_PATTERNS = (
    re.compile(r"Quantization not yet supported for op: '?([A-Za-z0-9_]+)'?"),
    re.compile(r"'(tfl\.[A-Za-z0-9_]+)' op"),
    re.compile(r"'(tf\.[A-Za-z0-9_]+)' op"),
    re.compile(r"op: ([A-Z][A-Z0-9_]+)"),
)


def _failed_ops(message: str) -> list[str]:
    ops: list[str] = []
    for pat in _OP_PATTERNS:
        for m in pat.finditer(message):
            if m.group(1) not in ops:
                ops.append(m.group(1))
    return ops


def op_table(blob: bytes) -> list[dict]:
    """Every op of the main graph: name, output tensor names, whether it computes in float (any float input or
    output), and whether it only does int32/int64 shape arithmetic. Read from the flatbuffer (edgeq.inspect)."""
    graph = reader.parse(blob, "the converted model")["subgraphs"][0]
    tensors = graph["tensors"]
    ops = []
    for op in graph["ops"]:
        outs = [tensors[t] for t in op["outputs"] if t >= 0]
        ops.append(
            {
                "index": op["index"],
                "op": op["op"],
                "outputs": [t["name"] for t in outs],
                "float": any(tensors[t]["dtype"] in FLOAT for t in op["inputs"] + op["outputs"] if t >= 0),
                "shape_only": bool(outs) and all(t["dtype"] in ("int32", "int64") for t in outs),
            }
        )
    return ops


def float_ops(blob: bytes, allowed: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Ops of a converted model that still compute in float (other than I/O QUANTIZE/DEQUANTIZE).

    TF 2.21 does not enforce TFLITE_BUILTINS_INT8: an op with no int8 kernel (e.g. SIN) is silently
    left in float between DEQUANTIZE/QUANTIZE. A "full-integer" model must not contain such islands,
    except the ones asked for: ops whose output tensor is in `allowed` (a mixed-precision denylist).
    """
    keep = set(allowed)
    return [
        f"{op['op']} (op #{op['index']})"
        for op in op_table(blob)
        if op["float"] and op["op"] not in ("QUANTIZE", "DEQUANTIZE") and not keep.intersection(op["outputs"])
    ]


def _converter(tf, model_source, saved_model: bool):
    return (
        tf.lite.TFLiteConverter.from_saved_model(str(model_source))
        if saved_model
        else tf.lite.TFLiteConverter.from_keras_model(model_source)
    )


def _io_dtype(tf, variant: VariantSpec):
    return {"int8": tf.int8, "uint8": tf.uint8, "float": tf.float32}[variant.io]


def requantize(calibrated: bytes, variant: VariantSpec, denylist: tuple[str, ...] | list[str] = ()) -> bytes:
    """int8 model from a calibrated model, keeping the ops whose output tensor is in `denylist` in float.

    Does what TFLiteConverter.convert() does after calibration in TF 2.21 (lite.py _quantize with the MLIR
    quantizer, then buffer deduplication): with an empty denylist the tensors, scales and outputs equal a
    plain convert()'s (checked; only the conversion metadata bytes differ).
    Milliseconds: no recalibration. Unknown names are ignored by the quantizer: callers check the result.
    """
    tf = import_tensorflow()
    from tensorflow.lite.python.convert import deduplicate_readonly_buffers, mlir_quantize

    io = _io_dtype(tf, variant)
    with captured_output():  # mlir_quantize prints its settings on fd 1
        blob = mlir_quantize(
            calibrated,
            disable_per_channel=not variant.per_channel,
            input_data_type=io,
            output_data_type=io,
            denylisted_nodes=list(denylist) or None,
        )
        return deduplicate_readonly_buffers(blob)


def _raise_convert_error(e: Exception, out_text: str, variant: VariantSpec):
    msg = str(e) + "\n" + out_text
    ops = _failed_ops(msg)
    first = next((ln.strip() for ln in msg.splitlines() if "error" in ln.lower()), msg.splitlines()[0] if msg else "")
    if ops:
        raise QuantizeError(
            f"variant {variant.key}: cannot convert: op(s) {', '.join(ops)} cannot be quantized to {variant.type} "
            f"({first[:300]})",
            "replace those ops, or use a 'dynamic' or 'float16' variant for this model",
        ) from None
    raise QuantizeError(
        f"variant {variant.key}: conversion failed: {first[:500]}", "rerun with --debug for the converter's full output"
    ) from None


def convert(
    model_source, variant: VariantSpec, calib: np.ndarray | None, saved_model: bool = False, calibrated_out: dict | None = None
) -> bytes:
    """Convert a Keras model (or a SavedModel directory) to TFLite bytes for one variant.

    int8: calibrated once (kept in calibrated_out["calibrated"] when given, for the per-layer debugger and the
    mixed-precision search), then quantized by requantize().
    """
    tf = import_tensorflow()
    conv = _converter(tf, model_source, saved_model)
    k = kind(variant)
    if k.optimize:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if k.ops_set:
        conv.target_spec.supported_ops = [getattr(tf.lite.OpsSet, k.ops_set)]
    if k.supported_type:
        conv.target_spec.supported_types = [getattr(tf, k.supported_type)]
    if k.calibrated:
        if calib is None or len(calib) == 0:
            raise QuantizeError(f"variant {variant.key}: no calibration data", "the training split is empty")

        advance = tracker()

        def rep():
            for i in range(len(calib)):
                yield [calib[i : i + 1].astype(np.float32)]
                advance(f"calibrate {variant.key}", i + 1, len(calib))

        conv.representative_dataset = rep
        if not variant.per_channel:
            conv._experimental_disable_per_channel = True  # noqa: SLF001 - TF 2.21's only switch for it
    if k.requantized:
        conv.inference_input_type = conv.inference_output_type = _io_dtype(tf, variant)
        conv._experimental_calibrate_only = True  # noqa: SLF001 - see requantize()
    out = {"text": ""}
    try:
        with captured_output() as out:
            blob = conv.convert()
            if k.requantized:
                if variant.calibration_method != "minmax":
                    blob, info = recalibrate(
                        blob, cast(np.ndarray, calib), variant.calibration_method, variant.calibration_percentile
                    )
                    if calibrated_out is not None:
                        calibrated_out["calibration"] = info
                if calibrated_out is not None:
                    calibrated_out["calibrated"] = blob
                blob = requantize(blob, variant)
    except Exception as e:
        _raise_convert_error(e, out["text"], variant)
    if k.full_integer:
        bad = float_ops(blob)
        if bad:
            raise QuantizeError(
                f"variant {variant.key}: op(s) {', '.join(bad)} cannot be quantized to {variant.type}: "
                "the converter left them in float, so the model is not full-integer",
                "replace those ops (they have no integer kernel), or use a 'dynamic' or 'float16' variant",
            )
    return blob
