"""qat stage: fine-tune the trained model with fake quantization, convert it to full-integer int8.

tensorflow-model-optimization needs tf-keras with TF_USE_LEGACY_KERAS=1 set before TensorFlow is
imported, and this process already runs Keras 3: the work happens in a child process
(edgeq/stages/qat_worker.py, started by edgeq/stages/child.py, which relays its progress and re-raises its
errors). This side writes the job and checks that the result is full-integer like any PTQ int8 variant.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from edgeq.config import PipelineSpec, VariantSpec
from edgeq.errors import ConfigError, QuantizeError
from edgeq.records.stages import QatOutput, QatTraining, QatVersions
from edgeq.stages.child import run_child
from edgeq.stages.convert import float_ops

_DISTS = ("tf-keras", "tensorflow-model-optimization")


def versions() -> QatVersions:
    """The packages QAT depends on, for the stage's cache key (`to_json()`: {distribution: version or None})."""
    out: dict[str, str | None] = {}
    for d in _DISTS:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = None
    return QatVersions.from_json(out)


def _check_installed() -> None:
    missing = [d for d, v in versions().to_json().items() if v is None]
    if missing:
        raise QuantizeError(
            f"quantization-aware training needs {', '.join(missing)}, which is not installed",
            'pip install "tf-keras>=2.21,<2.22" "tensorflow-model-optimization>=0.8,<0.9"',
        )


def run_qat(
    spec: PipelineSpec,
    base: Path,
    variant: VariantSpec,
    model_path: Path,
    out_dir: Path,
    log: Callable[[str], None],
    saved_model: bool = False,
) -> QatOutput:
    """Write out_dir/model.tflite (int8, from QAT) and return the stage's metrics."""
    if saved_model or spec.train.qat is None:
        raise ConfigError(
            f"variant {variant.key}: quantization-aware training needs a Keras model and train.qat "
            f"({'model.path is a SavedModel directory' if saved_model else 'train.qat is not set'})",
            "give model.builtin, a .keras file or a factory, and set train.qat.epochs",
        )
    _check_installed()
    job = {
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_unset=True),
        "variant": variant.model_dump(mode="json", exclude_unset=True),
        "base": str(base),
        "model_path": str(model_path),
        "out_dir": str(out_dir),
    }
    start = time.perf_counter()
    # the child reports JSON on purpose (it runs tf-keras, not this process's Keras 3): this is the one place
    # where it becomes a record
    trained = QatTraining.from_json(
        run_child(
            "edgeq.stages.qat_worker",
            job,
            out_dir,
            log,
            name="qat",
            died=f"variant {variant.key}: the QAT process",
            error=QuantizeError,
            prefix=f"variant {variant.key}: ",
            env={"TF_USE_LEGACY_KERAS": "1"},  # qat_worker sets it too; this covers anything imported before it
        )
    )
    blob = (out_dir / "model.tflite").read_bytes()
    bad = float_ops(blob)
    if bad:
        raise QuantizeError(
            f"variant {variant.key}: op(s) {', '.join(bad)} stayed in float after QAT: the model is not full-integer",
            "replace those ops (they have no integer kernel), or use a 'dynamic' or 'float16' variant",
        )
    return QatOutput(
        variant=variant.key,
        type=variant.type,
        qat=True,
        size_bytes=len(blob),
        calibration_samples=0,
        qat_total_seconds=round(time.perf_counter() - start, 3),
        **{name: getattr(trained, name) for name in trained.model_fields_set},
    )
