"""Records of a pipeline run: the manifest (HOME/runs/<id>/manifest.json) and its parts.

Today's manifests write some keys only on some paths (a SavedModel train stage has `skipped` and
no history; an edgetpu quantize stage has no `calibration_selection`, a plain one has it as null).
So these records keep optional keys exactly as given: `to_json()` writes an optional key when it
was given, even as null, and leaves it out when it was not. A manifest read with `from_stored()` keeps
the keys this version does not know (stage metrics of a newer edgeq), after the known ones; built in
code, a record refuses them.

Fleet parts (deploy summaries, benchmark rows, board accuracy checks, runtime) are edgeq.records.fleet's.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field

from edgeq.records.base import Record, _jsonable
from edgeq.records.fleet import AccuracyCheck, BenchResult, FleetSummary, RuntimeInfo
from edgeq.records.numeric import NumericCheck

Num = int | float  # a number as written: 1 stays 1, 1.0 stays 1.0
Doc = dict[str, Any]  # a sub-document this layer passes through unread


class RunRecord(Record):
    """A record whose optional keys appear in its JSON exactly when they were given."""

    def to_json(self) -> dict[str, Any]:
        given = self.model_fields_set
        out: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            if name in given or info.is_required():
                out[info.alias or name] = _jsonable(getattr(self, name))
        return self._with_unknown(out)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed; the keys it had stay the keys it writes."""
        return self._rebuild({k: getattr(self, k) for k in self.model_fields_set}, changes)

    def without(self, *keys: str) -> Self:
        """A copy that no longer writes these optional keys."""
        return self._rebuild({k: getattr(self, k) for k in self.model_fields_set if k not in keys}, {})


class LayerError(RunRecord):
    """One int8 layer's error against float, from TFLite's QuantizationDebugger (edgeq/stages/debug.py)."""

    op: str
    layer: str
    tensor: str
    scale: Num
    zero_point: int
    rmse_scale: Num | None = None
    mean_error: Num | None = None
    max_abs_error: Num | None = None
    num_elements: int | None = None


class LayerErrors(RunRecord):
    """Per-layer errors of an int8 variant, or why there are none (`skipped`)."""

    samples: int | None = None
    layers: tuple[LayerError, ...] | None = None
    worst: tuple[LayerError, ...] | None = None
    skipped: str | None = None


class MixedPrecision(RunRecord):
    """What the manifest shows of a mixed-precision search (the quantize stage's meta keeps every step)."""

    met: bool | None = None
    budget: Num | None = None
    float_layers: tuple[Doc, ...] | None = None  # {"layer", "op", "tensor"}
    tried: tuple[str, ...] | None = None
    int8_op_fraction: Num | None = None
    val_drop: Num | None = None
    size_bytes: int | None = None
    plain_size_bytes: int | None = None
    size_ratio_vs_plain: Num | None = None
    latency_us: Doc | None = None  # {"plain_int8": µs, "mixed": µs}
    latency_ratio_vs_plain: Num | None = None
    search_seconds: Num | None = None


class GateOutcome(RunRecord):
    passed: bool
    failed: tuple[str, ...] = ()


class VariantResult(RunRecord):
    """One variant in the manifest's `variants`: its artifact, then (after validate) its measurements."""

    type: str
    qat: bool | None = None  # written only for a QAT variant (as true)
    artifact: str
    sha256: str
    size_bytes: int
    mixed_precision: MixedPrecision | None = None
    accuracy: Num | None = None
    test_samples: int | None = None
    layer_errors: LayerErrors | None = None
    accuracy_drop: Num | None = None  # only with an fp32 baseline
    size_ratio: Num | None = None
    gates: GateOutcome | None = None


class StageRun(RunRecord):
    """What every cached stage writes: its key, whether the cache answered, and its timing."""

    key: str | None = None
    cached: bool | None = None


class TrainStage(StageRun):
    skipped: str | None = None  # "SavedModel input": nothing to train
    output: str
    epochs_run: int | None = None
    history: dict[str, tuple[Num | None, ...]] | None = None
    train_seconds: Num | None = None
    keras_test_accuracy: Num | None = None  # for reference only: validate measures the .tflite files
    params: int | None = None
    seconds: Num | None = None
    from_run: str | None = None  # the run that built a cached output


class QuantizeStage(StageRun):
    output: str
    variant: str
    type: str
    qat: bool | None = None
    size_bytes: int
    cpu_model_bytes: int | None = None  # edgetpu: the int8 model before compilation
    eval_file: str | None = None  # edgetpu: the file validate measures
    convert_seconds: Num | None = None
    calibration_samples: int | None = None
    qat_total_seconds: Num | None = None
    qat_epochs: int | None = None
    qat_learning_rate: Num | None = None
    qat_batch_size: int | None = None
    qat_history: dict[str, tuple[Num | None, ...]] | None = None
    qat_seconds: Num | None = None
    qat_keras_test_accuracy: Num | None = None
    calibration_selection: str | None = None
    histogram_calibration: Doc | None = None
    mixed_precision: Doc | None = None  # the full search report (see MixedPrecision for the summary)
    edgetpu: Doc | None = None
    quantizer: str | None = None  # "litert-quantizer 0.11.0": made by the LiteRT quantizer, not TFLiteConverter
    seconds: Num | None = None
    from_run: str | None = None


class ValidateStage(StageRun):
    accuracy: Num
    test_samples: int
    size_bytes: int
    eval_seconds: Num | None = None
    runtime: RuntimeInfo | None = None
    layer_errors: LayerErrors | None = None
    seconds: Num | None = None
    from_run: str | None = None


class DeployStage(RunRecord):
    """Deploy results per variant (what edgeq.fleet.deployment returned), or why nothing was deployed."""

    skipped: str | None = None
    cached: bool | None = None
    results: dict[str, FleetSummary] | None = None


class BenchmarkStage(RunRecord):
    """One row per device x variant x threads (a board that ran none has one row with threads None).

    With benchmark.rerun_baseline, `baseline_run` is the run whose artifacts were re-measured (rows of variant
    "<variant>@baseline") and `baseline_notes` why some variants were not."""

    cached: bool | None = None
    results: tuple[BenchResult, ...] = ()
    baseline_run: str | None = None
    baseline_notes: tuple[str, ...] | None = None
    numeric_inputs: str | None = None  # benchmark.numeric_check: the golden rows (.npy) kept beside the artifacts


class RunStages(RunRecord):
    """The manifest's `stages`, in the order they run."""

    train: TrainStage | None = None
    quantize: dict[str, QuantizeStage] | None = None
    validate_: dict[str, ValidateStage] | None = Field(default=None, alias="validate")
    deploy: DeployStage | None = None
    benchmark_accuracy: tuple[AccuracyCheck, ...] | None = None
    benchmark: BenchmarkStage | None = None
    benchmark_numeric: tuple[NumericCheck, ...] | None = None  # benchmark.numeric_check: one per variant x board


class RunManifest(RunRecord):
    """HOME/runs/<id>/manifest.json: written at start, at each stage boundary and at the end.

    status: running (or a killed run: `history --import` records it as interrupted once its pid is gone), ok,
    gate_failed, fleet_failed, failed (with `error`), interrupted (Ctrl-C), terminated (SIGTERM or SIGHUP).
    `run_dir` is never written to the file: run_pipeline adds it to what it returns.
    """

    run_id: str
    pipeline: str
    pipeline_file: str
    pipeline_sha256: str
    status: str
    started: str
    pid: int | None = None  # only while running: a reader can tell a live run from a killed one
    params: Doc
    versions: dict[str, str | None]
    inputs: dict[str, Doc]
    stages: RunStages
    variants: dict[str, VariantResult]
    runtime: RuntimeInfo | None = None
    gates_failed: tuple[str, ...] | None = None
    benchmarks: tuple[BenchResult, ...] | None = None  # the benchmark stage's rows, again at the top
    fleet_failed: tuple[str, ...] | None = None
    error: str | None = None
    finished: str | None = None
    wall_seconds: Num | None = None
    run_dir: str | None = None
    adhoc: bool | None = None  # an `edgeq bench` run by hand (no pipeline ran): stored, never a baseline unless asked
