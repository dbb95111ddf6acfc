"""What the TensorFlow stage functions (edgeq/stages/) hand the pipeline (edgeq/pipeline/steps.py).

Each is the stage's metrics as its cache entry stores them (HOME/cache/<stage>/<key>/meta.json): `to_json()`
writes today's meta.json keys in today's order, and an optional key exactly when it was given (even as null),
like the manifest's records (edgeq.records.run). The manifest's views of a stage (TrainStage, QuantizeStage,
ValidateStage) add the stage's key, cache state and output path, and are read back from these documents.
"""

from __future__ import annotations

from pydantic import Field

from edgeq.records.run import Doc, Num, RunRecord

History = dict[str, tuple[Num | None, ...]]  # {metric: per-epoch values}


class TrainOutput(RunRecord):
    """The train stage's metrics (edgeq/stages/train.py)."""

    epochs_run: int
    history: History
    train_seconds: Num
    keras_test_accuracy: Num  # for reference only: validate measures the .tflite files
    params: int


class TorchConversion(RunRecord):
    """model.torch converted to a float .tflite (edgeq/stages/torchsrc.py): it stands in for the train stage."""

    skipped: str
    train_seconds: Num
    params: int


class QuantizeOutput(RunRecord):
    """One variant's .tflite from TFLiteConverter, the Edge TPU compiler or the LiteRT quantizer.

    Which optional keys a path gives is part of its meta.json: an edgetpu variant has no
    calibration_selection, a plain one has it (null when not calibrated), the LiteRT fp32 pass-through neither.
    """

    variant: str
    type: str
    size_bytes: int
    cpu_model_bytes: int | None = None  # edgetpu: the int8 model before compilation
    eval_file: str | None = None  # edgetpu: the file validate measures
    convert_seconds: Num
    calibration_samples: int
    calibration_selection: str | None = None
    histogram_calibration: Doc | None = None
    mixed_precision: Doc | None = None  # the mixed-precision search's full report (edgeq/stages/mixed.py)
    edgetpu: Doc | None = None  # the compiler's facts (version, ops on the TPU / CPU, its output)
    quantizer: str | None = None  # "litert-quantizer 0.11.0"


class QatTraining(RunRecord):
    """What the QAT child process (edgeq/stages/qat_worker.py) reports: its fine-tuning and conversion."""

    qat_epochs: int
    qat_learning_rate: Num
    qat_batch_size: int
    qat_history: History
    qat_seconds: Num
    qat_keras_test_accuracy: Num  # reference only: validate measures the .tflite
    transfer_max_diff: Num | None = None
    convert_seconds: Num


class QatOutput(RunRecord):
    """A QAT variant's quantize-stage metrics (edgeq/stages/qat.py): this side's, then the child's (QatTraining)."""

    variant: str
    type: str
    qat: bool
    size_bytes: int
    calibration_samples: int
    qat_total_seconds: Num
    qat_epochs: int
    qat_learning_rate: Num
    qat_batch_size: int
    qat_history: History
    qat_seconds: Num
    qat_keras_test_accuracy: Num
    transfer_max_diff: Num | None = None
    convert_seconds: Num


class QatVersions(RunRecord):
    """The packages QAT depends on (None: not installed), for the qat stage's cache key."""

    tf_keras: str | None = Field(alias="tf-keras")
    tfmot: str | None = Field(alias="tensorflow-model-optimization")


class Evaluation(RunRecord):
    """A .tflite's accuracy on the test split (edgeq/stages/validate.py)."""

    accuracy: Num
    test_samples: int
    size_bytes: int
    eval_seconds: Num


class FloatModelFacts(RunRecord):
    """A float .tflite's signature, input tensor name and input shape (edgeq/stages/litert.py)."""

    signature: str
    input: str
    shape: tuple[int, ...]
