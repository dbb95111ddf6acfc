"""The variant table: what each quantize.variants[].type is and which builder makes it.

One row per type, read by every place that used to ask `variant.type in (...)`: the pipeline's quantize
stage (which builder, whether it draws calibration rows, the cache key's libraries), the TFLiteConverter
options (convert.py), the LiteRT quantizer's recipe (litert.py) and the metrics a quantize stage reports.
A new type is one row here (and its name in edgeq.config's VariantType).

Data only: no TensorFlow and no other stage behind it, so convert.py and litert.py can read it and
tests/unit can check it against the config's lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from edgeq.config import VariantSpec

# converter: TFLiteConverter (edgeq/stages/convert.py, via quantize.py); edgetpu: an int8 conversion, the Edge TPU
# check and edgetpu_compiler (edgetpu.py); litert: the LiteRT quantizer on a float .tflite (litert.py);
# qat: quantization-aware training in a tf-keras child process (qat.py)
Builder = Literal["converter", "edgetpu", "litert", "qat"]


@dataclass(frozen=True)
class VariantKind:
    type: str
    calibrated: bool  # calibrated on training rows (a representative dataset)
    full_integer: bool  # every compute op integer: an op left in float fails the stage
    builder: Builder  # how a Keras model or SavedModel becomes this variant
    from_float_tflite: bool  # the LiteRT quantizer makes it from a float .tflite (model.tflite, model.torch)
    extra: str | None = None  # the pip extra its builder needs beyond [train]
    # TFLiteConverter (builder "converter"; edgetpu converts as int8)
    optimize: bool = False  # tf.lite.Optimize.DEFAULT
    ops_set: str | None = None  # the tf.lite.OpsSet member of target_spec.supported_ops
    supported_type: str | None = None  # a tf dtype name for target_spec.supported_types
    # calibrate only, then requantize() with the variant's io type: keeps the calibrated model for histogram
    # ranges, the per-layer debugger and the mixed-precision search (accuracy_budget)
    requantized: bool = False
    # LiteRT quantizer recipe: (bits, symmetric) of integer activations; None: no integer activations
    activations: tuple[int, bool] | None = None
    float_compute: bool = False  # int8 weights dequantized at load, float compute (explicit DEQUANTIZE)


KINDS: dict[str, VariantKind] = {
    k.type: k
    for k in (
        VariantKind("fp32", calibrated=False, full_integer=False, builder="converter", from_float_tflite=True),
        VariantKind(
            "int8",
            calibrated=True,
            full_integer=True,
            builder="converter",
            from_float_tflite=True,
            optimize=True,
            ops_set="TFLITE_BUILTINS_INT8",
            requantized=True,
            activations=(8, False),  # TFLite's int8 scheme: asymmetric activations, symmetric weights
        ),
        VariantKind(
            "int16x8",
            calibrated=True,
            full_integer=True,
            builder="converter",
            from_float_tflite=True,
            optimize=True,
            ops_set="EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",
            activations=(16, True),  # TFLite's 16x8 kernels need symmetric int16 activations
        ),
        VariantKind("dynamic", calibrated=False, full_integer=False, builder="converter", from_float_tflite=True, optimize=True),
        VariantKind(
            "float16",
            calibrated=False,
            full_integer=False,
            builder="converter",
            from_float_tflite=False,
            optimize=True,
            supported_type="float16",
        ),
        VariantKind("edgetpu", calibrated=True, full_integer=True, builder="edgetpu", from_float_tflite=False),
        # TFLiteConverter has no int8 weight-only mode: a Keras model's fp32 conversion goes to the LiteRT quantizer
        VariantKind(
            "weight_only",
            calibrated=False,
            full_integer=False,
            builder="litert",
            from_float_tflite=True,
            extra="tflite-quant",
            float_compute=True,
        ),
    )
}


def kind(variant: VariantSpec | str) -> VariantKind:
    """The table's row for a variant (or a type name)."""
    return KINDS[variant if isinstance(variant, str) else variant.type]


def builder(variant: VariantSpec, made_elsewhere: bool) -> Builder:
    """Which builder makes this variant: QAT for qat: true, the LiteRT quantizer for a model made elsewhere
    (a float .tflite is all there is), else the type's own."""
    if variant.qat:
        return "qat"
    if made_elsewhere:
        return "litert"
    return kind(variant).builder
