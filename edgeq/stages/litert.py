"""Quantizing a float .tflite with the LiteRT quantizer (PyPI litert-quantizer, the extra edgeq[tflite-quant]).

For models made elsewhere (model.tflite): there is no Keras model for TFLiteConverter, so the quantizer
works on the flatbuffer itself. Static int8 / int16x8 calibrate on the pipeline's training rows like the
converter path does; dynamic and weight_only need no data. weight_only also serves Keras models (their fp32
conversion is quantized here): TFLiteConverter has no int8 weight-only mode.
"""

from __future__ import annotations

import os
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from edgeq.config import VariantSpec
from edgeq.errors import MissingExtraError, ModelError, QuantizeError
from edgeq.progress import tracker
from edgeq.records.stages import FloatModelFacts, QuantizeOutput
from edgeq.stages.convert import op_table
from edgeq.stages.quiet import captured_output
from edgeq.stages.variants import kind

DIST = "litert-quantizer"
EXTRA = "tflite-quant"


def quantizer_version() -> str | None:
    try:
        return metadata.version(DIST)
    except metadata.PackageNotFoundError:
        return None


def _quantizer_class(variant: VariantSpec):
    try:
        from litert_quantizer import Quantizer
    except ImportError as e:
        raise MissingExtraError(
            f"variant {variant.key}: {variant.type} needs the LiteRT quantizer ({DIST}), which is not installed ({e})",
            f"pip install 'edgeq[{EXTRA}]'",
        ) from None
    return Quantizer


def recipe(variant: VariantSpec) -> list[dict]:
    """The quantizer's recipe for a variant: one rule for every op (the shipped default_* recipes, with per_channel)."""
    weights = {
        "num_bits": 8,
        "symmetric": True,
        "granularity": "CHANNELWISE" if variant.per_channel else "TENSORWISE",
        "dtype": "INT",
    }
    config: dict = {"weight_tensor_config": weights, "skip_checks": False, "min_weight_elements": 0}
    k = kind(variant)
    if not k.from_float_tflite or k.type == "fp32":  # fp32 is the float model itself, not a quantizer recipe
        raise QuantizeError(f"variant {variant.key}: the LiteRT quantizer cannot make {variant.type}", None)
    if k.activations is not None:
        bits, sym = k.activations
        config["activation_tensor_config"] = {"num_bits": bits, "symmetric": sym, "granularity": "TENSORWISE", "dtype": "INT"}
    config |= {"compute_precision": "FLOAT" if k.float_compute else "INTEGER", "explicit_dequantize": k.float_compute}
    return [{"regex": ".*", "operation": "*", "algorithm_key": "min_max_uniform_quantize", "op_config": config}]


def float_model_facts(blob: bytes, where: str) -> FloatModelFacts:
    """The float .tflite's signature, input name and input shape; a model that is not float is refused."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        with captured_output():
            interp = Interpreter(model_content=blob)
    except Exception as e:
        raise ModelError(f"{where}: not a TFLite model the runtime can load: {str(e)[:300]}", "check model.tflite") from None
    inputs = interp.get_input_details()
    if len(inputs) != 1:
        raise ModelError(f"{where}: the model has {len(inputs)} inputs; edgeq feeds one (an image or a feature row)", None)
    if inputs[0]["dtype"] != np.float32:
        raise ModelError(
            f"{where}: input is {np.dtype(inputs[0]['dtype']).name}, not float32: the model is already quantized",
            "give the float (fp32) .tflite: quantizing a quantized model twice is not supported",
        )
    sigs = interp.get_signature_list()
    if not sigs:
        raise ModelError(
            f"{where}: the model has no signature (SignatureDef), which the LiteRT quantizer needs to calibrate",
            "convert it again with a current converter (TF >= 2.7 writes serving_default)",
        )
    key = next(iter(sigs))
    return FloatModelFacts(signature=key, input=sigs[key]["inputs"][0], shape=tuple(int(d) for d in inputs[0]["shape"]))


def check_input_fits(facts: FloatModelFacts, x: np.ndarray, where: str) -> None:
    """The data's rows fill the model's input (reshaped like validate does: 28x28 rows fit a 28x28x1 input)."""
    want = facts.shape[1:]
    if int(np.prod(want)) != int(np.prod(x.shape[1:])):
        raise ModelError(
            f"{where}: the model's input is {list(facts.shape)}, the data's rows are {list(x.shape[1:])}",
            "make the data match the model: data.image_size [height, width] and data.color (rgb: 3 channels)",
        )


class _CalibrationRows:
    """The calibration rows, one at a time (a vendor's model often has a fixed batch of 1). Re-iterable: the
    quantizer walks the data once to count it (list(data)) before calibrating, so a generator would be spent
    by the count; progress is reported on the calibrating pass only."""

    def __init__(self, facts: FloatModelFacts, calib: np.ndarray, label: str):
        self.name, self.calib, self.label = facts.input, calib, label
        self.shape = (1, *facts.shape[1:])
        self.passes = 0
        self.advance = tracker()

    def __iter__(self):
        self.passes += 1
        for i in range(len(self.calib)):
            yield {self.name: self.calib[i : i + 1].reshape(self.shape).astype(np.float32)}
            if self.passes > 1:
                self.advance(f"calibrate {self.label}", i + 1, len(self.calib))


def _float_islands(blob: bytes) -> list[str]:
    """Ops of a static-quantized model computing in float. SHAPE reading a dequantized tensor only reads its
    dimensions (the quantizer leaves Flatten's SHAPE so), like the I/O QUANTIZE/DEQUANTIZE."""
    return [
        f"{op['op']} (op #{op['index']})"
        for op in op_table(blob)
        if op["float"] and not op["shape_only"] and op["op"] not in ("QUANTIZE", "DEQUANTIZE")
    ]


def quantize_float(
    float_blob: bytes, variant: VariantSpec, calib: np.ndarray | None, out_dir: Path, where: str
) -> QuantizeOutput:
    """Write out_dir/model.tflite: the float model quantized by the LiteRT quantizer; returns the stage's metrics."""
    start = time.perf_counter()
    quantizer = _quantizer_class(variant)
    facts = float_model_facts(float_blob, where)
    q = quantizer(bytearray(float_blob), recipe(variant))
    try:
        with captured_output() as out:  # the quantizer prints a size report on fd 1 and a tqdm bar on fd 2
            qsv = None
            if q.need_calibration:
                if calib is None or len(calib) == 0:
                    raise QuantizeError(f"variant {variant.key}: no calibration data", "the training split is empty")
                check_input_fits(facts, calib, where)
                rows = _CalibrationRows(facts, calib, variant.key)
                qsv = q.calibrate({facts.signature: rows}, num_threads=os.cpu_count() or 1)
            blob = bytes(q.quantize(qsv, enable_progress_report=False).quantized_model)
    except QuantizeError:
        raise
    except Exception as e:
        first = next((ln for ln in (str(e) + "\n" + out["text"]).splitlines() if ln.strip()), type(e).__name__)
        raise QuantizeError(
            f"variant {variant.key}: the LiteRT quantizer failed on {where}: {type(e).__name__}: {first[:400]}",
            "rerun with --debug for its full output; a dynamic or weight_only variant needs no calibration",
        ) from None
    k = kind(variant)
    if k.full_integer:
        bad = _float_islands(blob)
        if bad:
            raise QuantizeError(
                f"variant {variant.key}: op(s) {', '.join(bad)} stayed in float: the model is not full-integer",
                "those ops have no integer kernel in the quantizer: use a dynamic or weight_only variant",
            )
    (out_dir / "model.tflite").write_bytes(blob)
    return QuantizeOutput(
        variant=variant.key,
        type=variant.type,
        size_bytes=len(blob),
        convert_seconds=round(time.perf_counter() - start, 3),
        calibration_samples=int(len(calib)) if k.calibrated and calib is not None else 0,
        calibration_selection=variant.calibration_selection if k.calibrated else None,
        quantizer=f"{DIST} {quantizer_version()}",
    )
