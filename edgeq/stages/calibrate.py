"""Histogram calibration for int8: percentile or MSE activation ranges instead of min/max.

TFLite's calibrator records only each activation's min and max. TF 2.21 has histogram calibration
(percentile, MSE) only in its TF/StableHLO quantizer, which leaves a Keras SavedModel unquantized when
reached through TFLiteConverter (experimental_use_stablehlo_quantizer: every op stays float32). So
edgeq collects the histograms itself: it runs the calibrated model (a float model carrying the min/max
statistics) through the interpreter with every intermediate tensor kept, bins each calibrated tensor
over its recorded [min, max], asks TF's own calibration algorithms
(tensorflow.compiler.mlir.quantization.tensorflow.calibrator.calibration_algorithm) for the range,
writes that range back into the model's statistics, and lets mlir_quantize quantize as usual.
"""

from __future__ import annotations

import warnings

import numpy as np

from edgeq.stages import interpreter as rt
from edgeq.stages.quiet import captured_output, import_tensorflow

NUM_BINS = 512  # TF's histogram calibrator default; MSE searches are O(bins) per step
_METHODS = {"percentile": "CALIBRATION_METHOD_HISTOGRAM_PERCENTILE", "mse": "CALIBRATION_METHOD_HISTOGRAM_MSE_MAX_FREQUENCY"}


def _histograms(calibrated: bytes, x: np.ndarray, ranges: dict[int, tuple[float, float]]) -> dict[int, np.ndarray]:
    with warnings.catch_warnings(), captured_output():
        warnings.simplefilter("ignore")  # "preserve_all_tensors is for debugging": reading them is the point here
        it = rt.pick().interpreter_cls(model_content=calibrated, experimental_preserve_all_tensors=True)
        it.allocate_tensors()
    inp = it.get_input_details()[0]
    hist = {i: np.zeros(NUM_BINS, dtype=np.int64) for i in ranges}
    for k in range(len(x)):
        it.set_tensor(inp["index"], x[k : k + 1].astype(np.float32))
        it.invoke()
        for i, (lo, hi) in ranges.items():
            v = it.get_tensor(i)
            hist[i] += np.histogram(np.clip(v, lo, hi), bins=NUM_BINS, range=(lo, hi))[0]
    return hist


def recalibrate(calibrated: bytes, x: np.ndarray, method: str, percentile: float = 99.999) -> tuple[bytes, dict]:
    """Return (calibrated model with histogram-based ranges, {tensors changed, mean range shrink})."""
    import_tensorflow()
    from tensorflow.compiler.mlir.quantization.stablehlo import quantization_config_pb2 as qc
    from tensorflow.compiler.mlir.quantization.tensorflow.calibrator import calibration_algorithm as ca
    from tensorflow.compiler.mlir.quantization.tensorflow.calibrator import calibration_statistics_pb2 as cs
    from tensorflow.lite.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(calibrated))
    sg = model.subgraphs[0]
    inputs = set(int(i) for i in sg.inputs)
    ranges = {}
    for i, t in enumerate(sg.tensors):
        q = t.quantization
        if i in inputs or q is None or q.min is None or q.max is None or len(q.min) != 1:
            continue  # model inputs keep their range: clipping real inputs is the caller's choice, not ours
        lo, hi = float(q.min[0]), float(q.max[0])
        if hi > lo:
            ranges[i] = (lo, hi)
    hist = _histograms(calibrated, x, ranges)
    opts = qc.CalibrationOptions(
        calibration_method=getattr(qc.CalibrationOptions.CalibrationMethod, _METHODS[method]),
        calibration_parameters=qc.CalibrationOptions.CalibrationParameters(
            num_bins=NUM_BINS, min_percentile=100.0 - percentile, max_percentile=percentile
        ),
    )
    shrink = []
    for i, (lo, hi) in ranges.items():
        stats = cs.CalibrationStatistics(
            histogram_statistics=cs.CalibrationStatistics.HistogramStatistics(
                bin_width=(hi - lo) / NUM_BINS, lower_bound=lo, hist_freq=hist[i].astype(np.float32).tolist()
            )
        )
        new_lo, new_hi = ca.get_min_max_value(stats, opts)
        # a bin's midpoint can sit just inside a ReLU's 0: keep exact zero so zero stays representable exactly
        new_lo = min(float(new_lo), 0.0) if lo >= 0 else float(new_lo)
        new_lo, new_hi = max(new_lo, lo), min(float(new_hi), hi)
        if new_hi <= new_lo:
            continue
        q = sg.tensors[i].quantization
        q.min, q.max = np.array([new_lo], dtype=np.float32), np.array([new_hi], dtype=np.float32)
        shrink.append((new_hi - new_lo) / (hi - lo))
    blob = bytes(fu.convert_object_to_bytearray(model))
    return blob, {
        "method": method,
        "tensors": len(shrink),
        "mean_range_kept": round(float(np.mean(shrink)), 4) if shrink else 1.0,
        **({"percentile": percentile} if method == "percentile" else {}),
    }
