"""Pipeline rules for models made elsewhere (model.tflite, model.torch): which variants and keys apply to them.

The LiteRT quantizer works on the float .tflite's graph: there is no Keras model to train, no TensorFlow
converter to calibrate, so the converter's own options (histogram calibration, float/uint8 I/O, the
mixed-precision search, QAT) have no meaning there and are refused before anything runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeq.config.reader import where
from edgeq.errors import ConfigError

if TYPE_CHECKING:
    from edgeq.config.pipeline import PipelineSpec

# what the LiteRT quantizer makes from a float .tflite (fp32 is the file itself)
TFLITE_TYPES = ("fp32", "int8", "int16x8", "dynamic", "weight_only")
# TFLiteConverter options with no LiteRT quantizer counterpart: (key, allowed value or None for "not set")
_CONVERTER_ONLY = (("io", "int8"), ("calibration_method", "minmax"), ("accuracy_budget", None), ("qat", False))


def check_tflite_source(spec: PipelineSpec, file: str, lines: dict) -> None:
    """model.tflite / model.torch: no training keys, only the variant types and options the LiteRT quantizer has."""
    if not spec.model.made_elsewhere:
        return
    src = "model.tflite" if spec.model.tflite else "model.torch"
    for key in sorted(spec.train.model_fields_set):
        if key == "epochs" and spec.train.epochs == 0:
            continue
        raise ConfigError(
            f"{where(file, lines, ('train', key))}: {src} is a model trained elsewhere: train.{key} does not apply",
            "remove the train section (a model made elsewhere is quantized as it is)",
        )
    for i, v in enumerate(spec.quantize.variants):
        if v.type not in TFLITE_TYPES:
            raise ConfigError(
                f"{where(file, lines, ('quantize', 'variants', i, 'type'))}: variant type {v.type!r} cannot be made "
                f"from a float .tflite ({src})",
                f"use one of {', '.join(TFLITE_TYPES)} (the LiteRT quantizer's), or give the Keras model as model.path",
            )
        for key, allowed in _CONVERTER_ONLY:
            if key in v.model_fields_set and getattr(v, key) != allowed:
                raise ConfigError(
                    f"{where(file, lines, ('quantize', 'variants', i, key))}: {key} is a TFLiteConverter option; "
                    "a float .tflite is quantized by the LiteRT quantizer, which has none",
                    f"remove {key} from variant {v.key}"
                    + ("  (its int8 model has int8 input and output)" if key == "io" else ""),
                )
