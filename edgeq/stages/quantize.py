"""quantize stage: one .tflite per variant (fp32, int8, dynamic, float16, int16x8, edgetpu), calibrated
on training samples; the converter itself is edgeq/stages/convert.py, the types' table edgeq/stages/variants.py."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edgeq.config import VariantSpec
from edgeq.records.stages import QuantizeOutput
from edgeq.stages.convert import convert
from edgeq.stages.edgetpu import quantize_edgetpu
from edgeq.stages.mixed import search
from edgeq.stages.quiet import import_tensorflow
from edgeq.stages.variants import kind


def calibration_indices(y_train: np.ndarray | None, n_rows: int, n: int, seed: int, selection: str = "random") -> np.ndarray:
    """Which training rows calibrate: seeded random, the first n, or about n/classes of each class.

    class_balanced: classes short of their share give the rest to the others (round-robin), so the
    set still has n rows; within a class the rows are a seeded random choice.
    """
    n = min(n, n_rows)
    if selection == "first":
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if selection == "random" or y_train is None:
        return np.sort(rng.choice(n_rows, n, replace=False))
    pools = [rng.permutation(np.flatnonzero(y_train == c)) for c in np.unique(y_train)]
    taken = [0] * len(pools)
    picked: list[int] = []
    while len(picked) < n:
        progressed = False
        for i, pool in enumerate(pools):
            if len(picked) < n and taken[i] < len(pool):
                picked.append(int(pool[taken[i]]))
                taken[i] += 1
                progressed = True
        if not progressed:
            break
    return np.sort(np.asarray(picked, dtype=np.int64))


def calibration_set(
    x_train: np.ndarray, n: int, seed: int, selection: str = "random", y_train: np.ndarray | None = None
) -> np.ndarray:
    """Representative samples drawn from the training split (never the test split)."""
    return x_train[calibration_indices(y_train, len(x_train), n, seed, selection)]


def quantize(
    model_path: Path,
    variant: VariantSpec,
    calib: np.ndarray | None,
    out_dir: Path,
    saved_model: bool = False,
    load_model=None,
    val: tuple | None = None,
    log=lambda s: None,
) -> QuantizeOutput:
    """Write out_dir/model.tflite (and calibrated.tflite for int8); returns the stage's metrics.

    val: (x_val, y_val), needed by an int8 variant with accuracy_budget (the mixed-precision search
    measures on the validation split, never on the test split).
    """
    start = time.perf_counter()
    k = kind(variant)
    if k.builder == "edgetpu":  # int8 + Edge TPU check + edgetpu_compiler: edgeq/stages/edgetpu.py
        return quantize_edgetpu(model_path, variant, calib, out_dir, saved_model=saved_model, load_model=load_model)
    if saved_model:
        source = model_path
    else:
        import_tensorflow()
        source = load_model(model_path)
    keep: dict = {}
    blob = convert(source, variant, calib, saved_model=saved_model, calibrated_out=keep)
    metrics: dict = {}
    if "calibrated" in keep:
        (out_dir / "calibrated.tflite").write_bytes(keep["calibrated"])
    if "calibration" in keep:
        metrics["histogram_calibration"] = keep["calibration"]
    if variant.accuracy_budget is not None:
        fp32 = convert(source, VariantSpec(type="fp32"), None, saved_model=saved_model)
        blob, metrics["mixed_precision"] = search(keep["calibrated"], blob, fp32, variant, val, log)
    (out_dir / "model.tflite").write_bytes(blob)
    return QuantizeOutput(
        variant=variant.key,
        type=variant.type,
        size_bytes=len(blob),
        convert_seconds=round(time.perf_counter() - start, 3),
        calibration_samples=int(len(calib)) if calib is not None and k.calibrated else 0,
        calibration_selection=variant.calibration_selection if k.calibrated else None,
        **metrics,
    )
