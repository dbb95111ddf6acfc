"""Mixed precision to an accuracy budget: keep in float the int8 layers that cost the most accuracy.

Calibration happens once (convert.convert); each candidate model is a requantize() of the calibrated
model with a denylist, which takes milliseconds, so the search cost is the accuracy measurements.
Accuracy is measured on the validation split through the interpreter: the test split stays unseen
until the validate stage reports the final drop.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from edgeq.config import VariantSpec
from edgeq.errors import QuantizeError
from edgeq.stages import interpreter as rt
from edgeq.stages.convert import float_ops, op_table, requantize
from edgeq.stages.debug import layer_errors
from edgeq.stages.quiet import captured_output
from edgeq.stages.validate import predict

SEARCH_SAMPLES = 5000  # validation rows per accuracy measurement: 1 row = 0.02 points at 5000
MAX_CANDIDATES = 16  # layers measured one by one (by debugger rank); bounds the search on deep models
MIN_RMSE_SCALE = 0.01  # below this a layer's int8 error is nil (reshapes): keeping it float buys nothing


def _accuracy(runtime, blob: bytes, x: np.ndarray, y: np.ndarray, workdir: Path) -> float:
    path = workdir / "candidate.tflite"
    path.write_bytes(blob)
    with captured_output():
        return float(np.mean(predict(runtime, path, x) == y))


def latency_us(runtime, blob: bytes, workdir: Path, min_runs: int = 200, min_seconds: float = 0.3) -> float:
    """Median batch-1 invoke time on this machine, 1 thread, after 20 warm-up runs."""
    path = workdir / "latency.tflite"
    path.write_bytes(blob)
    with captured_output():
        it = runtime.interpreter(str(path), num_threads=1)
        it.allocate_tensors()
    d = it.get_input_details()[0]
    rng = np.random.default_rng(0)
    x = (
        rng.integers(-128, 127, d["shape"]).astype(d["dtype"])
        if np.issubdtype(d["dtype"], np.integer)
        else rng.random(d["shape"], dtype=np.float32)
    )
    it.set_tensor(d["index"], x)
    for _ in range(20):
        it.invoke()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < min_runs or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        it.invoke()
        samples.append(time.perf_counter() - t)
    return round(statistics.median(samples) * 1e6, 2)


def int8_fraction(blob: bytes) -> tuple[float, int, int]:
    """(fraction, int8 ops, compute ops): compute ops exclude QUANTIZE/DEQUANTIZE and int32 shape arithmetic."""

    ops = [o for o in op_table(blob) if o["op"] not in ("QUANTIZE", "DEQUANTIZE") and not o["shape_only"]]
    n8 = sum(not o["float"] for o in ops)
    return (round(n8 / len(ops), 4) if ops else 1.0), n8, len(ops)


def _is_float(blob: bytes, tensor: str) -> bool:

    return any(tensor in o["outputs"] and o["float"] for o in op_table(blob))


def search(calibrated: bytes, plain: bytes, fp32: bytes, variant: VariantSpec, val, log=lambda s: None) -> tuple[bytes, dict]:
    """Return (model bytes, report). The model is plain int8 when that meets the budget."""
    budget = variant.accuracy_budget
    if val is None or len(val[0]) == 0:
        raise QuantizeError(
            f"variant {variant.key}: accuracy_budget needs a validation split to measure on", "set data.validation_split above 0"
        )
    x, y = val[0][:SEARCH_SAMPLES], val[1][:SEARCH_SAMPLES]
    runtime = rt.pick()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgeq-mixed-") as tmp:
        work = Path(tmp)
        acc_f = _accuracy(runtime, fp32, x, y, work)
        acc_q = _accuracy(runtime, plain, x, y, work)
        report: dict = {
            "budget": budget,
            "val_samples": int(len(y)),
            "fp32_val_accuracy": acc_f,
            "plain_val_accuracy": acc_q,
            "plain_size_bytes": len(plain),
        }
        log(
            f"  mixed precision: fp32 {acc_f:.4f}, plain int8 {acc_q:.4f} on {len(y)} validation rows "
            f"(budget {budget * 100:.2f} pts)"
        )
        best, best_acc, chosen, steps, candidates = plain, acc_q, [], [], []
        met = acc_f - acc_q <= budget
        if not met:
            candidates, alone = _candidates(calibrated, variant, runtime, x, y, work)
            best, best_acc, chosen, steps, met = _grow(
                calibrated, variant, runtime, (x, y, work), candidates, alone, (acc_f, acc_q, plain), log
            )
        names = [c["tensor"] for c in chosen]
        bad = float_ops(best, allowed=names)
        if bad:  # an unrequested float island: the same refusal as for a plain int8 model
            raise QuantizeError(
                f"variant {variant.key}: op(s) {', '.join(bad)} stayed float without being asked to",
                "replace those ops (they have no integer kernel), or use a 'dynamic' or 'float16' variant",
            )
        frac, n8, nops = int8_fraction(best)
        lat_plain = latency_us(runtime, plain, work)
        lat_mixed = lat_plain if best is plain else latency_us(runtime, best, work)
    report.update(
        {
            "met": met,
            "val_accuracy": best_acc,
            "val_drop": round(acc_f - best_acc, 6),
            "float_layers": [{"layer": c["layer"], "op": c["op"], "tensor": c["tensor"]} for c in chosen],
            "tried": [c["layer"] for c in candidates if c["applied"]],
            "candidates": candidates,
            "steps": steps,
            "int8_op_fraction": frac,
            "int8_ops": n8,
            "ops": nops,
            "size_bytes": len(best),
            "size_ratio_vs_plain": round(len(best) / len(plain), 4),
            "latency_us": {"plain_int8": lat_plain, "mixed": lat_mixed},
            "latency_ratio_vs_plain": round(lat_mixed / lat_plain, 4) if lat_plain else None,
            "search_seconds": round(time.perf_counter() - t0, 3),
        }
    )
    return best, report


def _candidates(calibrated: bytes, variant: VariantSpec, runtime, x, y, work: Path) -> tuple[list[dict], dict]:
    """The worst int8 layers (per the debugger), each measured kept float alone: (candidates, {tensor: (acc, blob)})."""
    stats = layer_errors(calibrated, variant, x)
    ranked = sorted(
        (la for la in stats.layers or () if (la.rmse_scale or 0) > MIN_RMSE_SCALE), key=lambda la: -(la.rmse_scale or 0)
    )[:MAX_CANDIDATES]
    candidates: list[dict] = []
    alone: dict[str, tuple[float, bytes]] = {}
    for la in ranked:  # the debugger's rank is a first guess; the measured accuracy decides the order
        blob = requantize(calibrated, variant, [la.tensor])
        applied = _is_float(blob, la.tensor)
        acc = _accuracy(runtime, blob, x, y, work) if applied else None
        candidates.append(
            {
                "layer": la.layer,
                "op": la.op,
                "tensor": la.tensor,
                "rmse_scale": la.rmse_scale,
                "val_accuracy_alone": acc,
                "applied": applied,
            }
        )
        if applied and acc is not None:
            alone[la.tensor] = (acc, blob)
    return candidates, alone


def _grow(calibrated: bytes, variant: VariantSpec, runtime, data, candidates: list[dict], alone: dict, start, log):
    """Keep layers float one more at a time, best alone first, until the budget is met.

    Returns (best model, its accuracy, the layers it keeps float, the steps, whether the budget is met).
    """
    x, y, work = data
    acc_f, best_acc, best = start
    budget = variant.accuracy_budget
    chosen: list[dict] = []
    steps: list[dict] = []
    best_n, met = 0, False
    for c in sorted((c for c in candidates if c["applied"]), key=lambda c: -c["val_accuracy_alone"]):
        chosen.append(c)
        names = [k["tensor"] for k in chosen]
        blob = alone[c["tensor"]][1] if len(chosen) == 1 else requantize(calibrated, variant, names)
        acc = alone[c["tensor"]][0] if len(chosen) == 1 else _accuracy(runtime, blob, x, y, work)
        steps.append({"float_layers": [k["layer"] for k in chosen], "val_accuracy": acc})
        log(f"  mixed precision: {', '.join(k['layer'] for k in chosen)} float -> {acc:.4f} (drop {(acc_f - acc) * 100:.2f} pts)")
        if acc > best_acc or acc_f - acc <= budget:
            best, best_acc, best_n = blob, acc, len(chosen)
        if acc_f - acc <= budget:
            met = True
            break
    return best, best_acc, chosen[:best_n], steps, met
