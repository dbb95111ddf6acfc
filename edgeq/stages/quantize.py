"""quantize stage: one .tflite per variant (fp32, int8, dynamic, float16, int16x8)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from edgeq.config import VariantSpec
from edgeq.errors import QuantizeError


def calibration_set(x_train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Representative samples drawn from the training split (never the test split)."""
    rng = np.random.default_rng(seed)
    n = min(n, len(x_train))
    return x_train[np.sort(rng.choice(len(x_train), n, replace=False))]


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


def float_ops(blob: bytes) -> list[str]:
    """Ops of a converted model that still compute in float (other than I/O QUANTIZE/DEQUANTIZE).

    TF 2.21 does not enforce TFLITE_BUILTINS_INT8: an op with no int8 kernel (e.g. SIN) is silently
    left in float between DEQUANTIZE/QUANTIZE. A "full-integer" model must not contain such islands.
    """
    from edgeq import runtime as rt

    interp = rt.pick().interpreter_cls(model_content=blob)
    dtypes = {t["index"]: np.dtype(t["dtype"]) for t in interp.get_tensor_details()}
    bad = []
    for op in interp._get_ops_details():  # noqa: SLF001 - the only op-level view the runtime offers
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue
        tensors = [t for t in list(op["inputs"]) + list(op["outputs"]) if t >= 0]
        if any(np.issubdtype(dtypes.get(t, np.dtype(np.int8)), np.floating) for t in tensors):
            bad.append(f"{op['op_name']} (op #{op['index']})")
    return bad


def convert(model_source, variant: VariantSpec, calib: np.ndarray | None, saved_model: bool = False) -> bytes:
    """Convert a Keras model (or a SavedModel directory) to TFLite bytes for one variant."""
    from edgeq.quiet import captured_output, import_tensorflow

    tf = import_tensorflow()
    conv = (tf.lite.TFLiteConverter.from_saved_model(str(model_source)) if saved_model
            else tf.lite.TFLiteConverter.from_keras_model(model_source))
    t = variant.type
    if t in ("int8", "int16x8"):
        if calib is None or len(calib) == 0:
            raise QuantizeError(f"variant {variant.key}: no calibration data", "the training split is empty")

        def rep():
            for i in range(len(calib)):
                yield [calib[i : i + 1].astype(np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        if not variant.per_channel:
            conv._experimental_disable_per_channel = True  # noqa: SLF001 - TF 2.21's only switch for it
        if t == "int8":
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            io = {"int8": tf.int8, "uint8": tf.uint8, "float": tf.float32}[variant.io]
            conv.inference_input_type = io
            conv.inference_output_type = io
        else:
            conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    elif t == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif t == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    out = {"text": ""}
    try:
        with captured_output() as out:
            blob = conv.convert()
    except Exception as e:
        msg = str(e) + "\n" + out["text"]
        ops = _failed_ops(msg)
        first = next((ln.strip() for ln in msg.splitlines() if "error" in ln.lower()), msg.splitlines()[0] if msg else "")
        if ops:
            raise QuantizeError(
                f"variant {variant.key}: cannot convert: op(s) {', '.join(ops)} cannot be quantized to {t} ({first[:300]})",
                f"replace those ops, or use a 'dynamic' or 'float16' variant for this model",
            ) from None
        raise QuantizeError(f"variant {variant.key}: conversion failed: {first[:500]}",
                            "rerun with --debug for the converter's full output") from None
    if t in ("int8", "int16x8"):
        bad = float_ops(blob)
        if bad:
            raise QuantizeError(
                f"variant {variant.key}: op(s) {', '.join(bad)} cannot be quantized to {t}: "
                "the converter left them in float, so the model is not full-integer",
                "replace those ops (they have no integer kernel), or use a 'dynamic' or 'float16' variant",
            )
    return blob


def quantize(model_path: Path, variant: VariantSpec, calib: np.ndarray | None, out_dir: Path,
             saved_model: bool = False, load_model=None) -> dict:
    """Write out_dir/model.tflite; returns the stage's metrics."""
    start = time.perf_counter()
    if variant.type == "edgetpu":  # int8 + Edge TPU check + edgetpu_compiler: edgeq/stages/edgetpu.py
        from edgeq.stages.edgetpu import quantize_edgetpu

        return quantize_edgetpu(model_path, variant, calib, out_dir, saved_model=saved_model, load_model=load_model)
    if saved_model:
        source = model_path
    else:
        from edgeq.quiet import import_tensorflow

        import_tensorflow()
        source = load_model(model_path)
    blob = convert(source, variant, calib, saved_model=saved_model)
    (out_dir / "model.tflite").write_bytes(blob)
    return {"variant": variant.key, "type": variant.type, "size_bytes": len(blob),
            "convert_seconds": round(time.perf_counter() - start, 3),
            "calibration_samples": int(len(calib)) if calib is not None and variant.type in ("int8", "int16x8") else 0}
