"""validate stage: every variant runs through a TFLite interpreter on the test split.

Accuracy of a quantized variant is measured on the .tflite itself, never on the Keras model.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgeq.config import GatesSpec, VariantSpec
from edgeq.records.run import LayerErrors, VariantResult
from edgeq.records.stages import Evaluation
from edgeq.stages.debug import layer_errors
from edgeq.stages.interpreter import Runtime
from edgeq.stages.quiet import captured_output


def _quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.integer):
        scale, zp = detail["quantization"]
        info = np.iinfo(dtype)
        if scale == 0:
            raise ValueError("integer input tensor without quantization parameters")
        return np.clip(np.round(x / scale) + zp, info.min, info.max).astype(dtype)
    return x.astype(dtype)


def predict(runtime: Runtime, model_path: Path, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """Top-1 predictions for every row of x. Batches when the model allows it, else one by one."""
    interp = runtime.interpreter(str(model_path))
    inp = interp.get_input_details()[0]
    out_idx = interp.get_output_details()[0]["index"]
    n = len(x)
    try:
        interp.resize_tensor_input(inp["index"], [batch, *inp["shape"][1:]])
        interp.allocate_tensors()
    except Exception:
        batch = 1
        interp = runtime.interpreter(str(model_path))
        interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    preds = np.empty(n, dtype=np.int64)
    shape = tuple(inp["shape"][1:])
    for i in range(0, n, batch):
        chunk = x[i : i + batch].reshape((-1, *shape))
        m = len(chunk)
        if m < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - m, *shape), chunk.dtype)])
        interp.set_tensor(inp["index"], _quantize_input(chunk, inp))
        interp.invoke()
        preds[i : i + m] = np.argmax(interp.get_tensor(out_idx)[:m].reshape(m, -1), axis=1)
    return preds


def evaluate(runtime: Runtime, model_path: Path, x_test: np.ndarray, y_test: np.ndarray, batch: int) -> Evaluation:
    start = time.perf_counter()
    with captured_output():  # the runtime logs delegate creation on fd 2
        preds = predict(runtime, model_path, x_test, batch)
    seconds = time.perf_counter() - start
    return Evaluation(
        accuracy=float(np.mean(preds == y_test)),
        test_samples=int(len(y_test)),
        size_bytes=model_path.stat().st_size,
        eval_seconds=round(seconds, 3),
    )


def layer_errors_of(quantize_dir: Path, variant: VariantSpec, x_test: np.ndarray) -> LayerErrors:
    """Per-layer int8 error of the artifact in quantize_dir, on the first test rows (edgeq/stages/debug.py).

    Needs the calibrated model the quantize stage keeps; a QAT model has none (its ranges were learned).
    Layers kept float by a mixed-precision search are left out: they have no int8 error.
    """
    import json

    cal = quantize_dir / "calibrated.tflite"
    if not cal.exists():
        return LayerErrors(
            skipped="no calibrated model (quantization-aware training, the LiteRT quantizer, or an older cache entry)"
        )
    meta = json.loads((quantize_dir / "meta.json").read_text()) if (quantize_dir / "meta.json").exists() else {}
    denylist = [f["tensor"] for f in (meta.get("mixed_precision") or {}).get("float_layers", [])]
    return layer_errors(cal.read_bytes(), variant, x_test, denylist)


def check_gates(variant: str, result: VariantResult, gates: GatesSpec, is_baseline: bool) -> list[str]:
    """Return the failed gates' messages (empty when the variant passes)."""
    failed = []
    mp = result.mixed_precision
    if mp is not None and not mp.met:
        budget = f"{mp.budget * 100:.2f}" if mp.budget is not None else "?"
        best = f"{mp.val_drop * 100:.2f}" if mp.val_drop is not None else "?"
        failed.append(
            f"{variant}: accuracy_budget {budget} points not met on the validation split "
            f"even with layers kept float (best drop {best} points; tried "
            f"{', '.join(mp.tried or []) or 'no layer'})"
        )
    if gates.min_accuracy is not None and result.accuracy is not None and result.accuracy < gates.min_accuracy:
        failed.append(f"{variant}: accuracy {result.accuracy:.4f} < min_accuracy {gates.min_accuracy}")
    drop = result.accuracy_drop
    if not is_baseline and gates.max_accuracy_drop is not None and drop is not None and drop > gates.max_accuracy_drop:
        failed.append(
            f"{variant}: accuracy drop {drop * 100:.2f} points > max_accuracy_drop {gates.max_accuracy_drop * 100:.2f} points"
        )
    if gates.max_size_bytes is not None and result.size_bytes > gates.max_size_bytes:
        failed.append(f"{variant}: size {result.size_bytes} bytes > max_size_bytes {gates.max_size_bytes}")
    return failed
