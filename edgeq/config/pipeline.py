"""The pipeline spec (pipelines/*.yaml): every key, its default, and the rules across sections."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from edgeq.config.benchcontrols import BenchControlsSpec, CooldownSpec, SustainedSpec
from edgeq.config.reader import NAME_RE, Spec


class DataSpec(Spec):
    source: Literal["sklearn-digits", "idx", "npz", "images"] = "sklearn-digits"
    path: str | None = None  # idx: a folder; npz: a file; images: a folder of class folders (or train/ val/ test/)
    train_images: str = "train-images-idx3-ubyte.gz"
    train_labels: str = "train-labels-idx1-ubyte.gz"
    test_images: str = "t10k-images-idx3-ubyte.gz"
    test_labels: str = "t10k-labels-idx1-ubyte.gz"
    image_size: list[int] | None = None  # images: [height, width] every image is resized to
    color: Literal["rgb", "grayscale"] = "rgb"  # images: 3 channels or 1
    # scale: /255 (0..255 data); unit: /255 always; mobilenet: [-1, 1]; efficientnet: 0..255 kept (Keras's
    # EfficientNet rescales inside the model); standardize: training-set mean/std
    preprocess: Literal["scale", "standardize", "none", "unit", "mobilenet", "efficientnet"] = "scale"
    validation_split: float = Field(0.1, ge=0.0, lt=1.0)
    # sources without a test set: sklearn-digits, images without a test/ folder (stratified)
    test_split: float = Field(0.2, gt=0.0, lt=1.0)
    max_train: int | None = Field(None, ge=10)
    max_test: int | None = Field(None, ge=10)

    @field_validator("image_size")
    @classmethod
    def _size(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (len(v) != 2 or any(x < 8 or x > 4096 for x in v)):
            raise ValueError("must be [height, width], each 8..4096")
        return v

    @model_validator(mode="after")
    def _path_needed(self) -> DataSpec:
        if self.source in ("idx", "npz", "images") and not self.path:
            raise ValueError(f"data.path is required for source {self.source!r}")
        if self.source == "images" and self.image_size is None:
            raise ValueError("data.image_size ([height, width]) is required for source 'images'")
        given = {"image_size", "color"} & self.model_fields_set
        if self.source != "images" and given:
            raise ValueError(f"{' and '.join(sorted(given))} applies to source 'images' only")
        return self


# keras.applications networks, built offline (weights: a local file or none; nothing is downloaded)
APPLICATIONS = ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0")


MODEL_SOURCES = ("builtin", "path", "factory", "tflite", "torch")


class ModelSpec(Spec):
    builtin: Literal["mlp", "cnn", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"] | None = None
    hidden: list[int] = Field(default_factory=lambda: [64])  # mlp: units of each hidden Dense
    filters: list[int] = Field(default_factory=lambda: [32, 64])  # cnn: filters per conv block
    kernel_size: int = Field(3, ge=1, le=11)
    dense: int = Field(128, ge=1)  # cnn: units of the dense layer after the convs
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    # keras.applications builtins (APPLICATIONS): the base network, global average pooling, Dropout, Dense
    input_size: list[int] | None = None  # [height, width]; default: the data's; else a Resizing layer in front
    alpha: float | None = Field(None, gt=0.0, le=2.0)  # width multiplier (MobileNet only; default 1.0)
    classes: int | None = Field(None, ge=2)  # default: the dataset's; must match it
    weights: str | None = None  # the base's weights: a local .weights.h5 / .h5 / .keras file; none: random init
    freeze_base: bool = False  # train.epochs with the base frozen, then train.fine_tune_epochs with it unfrozen
    # the base's BatchNorm moving-average momentum; Keras's 0.999 suits long runs and fine-tuning, but a short run
    # from random weights ends with moving statistics still far from the data's (chance accuracy at inference)
    bn_momentum: float | None = Field(None, gt=0.0, lt=1.0)
    path: str | None = None  # a .keras file or a SavedModel directory
    factory: str | None = None  # "package.module:function" returning a compiled-or-not Keras model
    # a float .tflite made elsewhere: no training; quantized by the LiteRT quantizer (edgeq[tflite-quant])
    tflite: str | None = None
    # a PyTorch model: "package.module:function" returning a trained torch.nn.Module, or a torch.export file
    # (.pt2); converted to a float .tflite by litert-torch (edgeq[torch]), then quantized like model.tflite
    torch: str | None = None
    # the torch module's image input layout: nchw (PyTorch's) gets NHWC input/output wrappers at conversion
    torch_layout: Literal["nchw", "nhwc"] = "nchw"

    @property
    def made_elsewhere(self) -> bool:
        """No Keras model: a float .tflite (given, or converted from PyTorch) quantized by the LiteRT quantizer."""
        return bool(self.tflite or self.torch)

    @field_validator("torch")
    @classmethod
    def _torch_form(cls, v: str | None) -> str | None:
        if v is not None and not (v.endswith(".pt2") or re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", v)):
            raise ValueError("must be 'package.module:function' or a torch.export file ending in .pt2")
        return v

    @field_validator("hidden", "filters")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(x < 1 for x in v):
            raise ValueError("must be a non-empty list of positive integers")
        return v

    @field_validator("factory")
    @classmethod
    def _factory_form(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", v):
            raise ValueError("must look like 'package.module:function'")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        given = [k for k in MODEL_SOURCES if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                f"set exactly one of {', '.join('model.' + k for k in MODEL_SOURCES)}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        app_keys = sorted({"input_size", "alpha", "classes", "weights", "freeze_base", "bn_momentum"} & self.model_fields_set)
        if app_keys and self.builtin not in APPLICATIONS:
            raise ValueError(f"{', '.join(app_keys)} applies to builtin {' | '.join(APPLICATIONS)} only")
        if "torch_layout" in self.model_fields_set and not self.torch:
            raise ValueError("torch_layout applies to model.torch only")
        if self.alpha is not None and self.builtin == "efficientnet_b0":
            raise ValueError("alpha applies to the MobileNet builtins only (EfficientNet has no width multiplier)")
        if self.freeze_base and not self.weights:
            raise ValueError("freeze_base needs model.weights: a frozen randomly initialised base learns nothing")
        if self.input_size is not None and (len(self.input_size) != 2 or any(x < 32 for x in self.input_size)):
            raise ValueError("input_size must be [height, width], each >= 32 (keras.applications' minimum)")
        return self


class EarlyStoppingSpec(Spec):
    monitor: str = "val_loss"
    patience: int = Field(2, ge=0)
    restore_best_weights: bool = True


class QatSpec(Spec):
    """Quantization-aware fine-tuning of the trained model (edgeq/stages/qat.py)."""

    epochs: int = Field(ge=1, le=10000)
    learning_rate: float | None = Field(None, gt=0)  # default: train.learning_rate / 10 (fine-tuning a trained model)
    batch_size: int | None = Field(None, ge=1)  # default: train.batch_size


class TrainSpec(Spec):
    epochs: int = Field(5, ge=0, le=10000)
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["adam", "sgd", "rmsprop", "adamw"] = "adam"
    learning_rate: float = Field(0.001, gt=0)
    # cosine: learning_rate decays to 1% of itself over the epochs (per step); constant: it stays
    lr_schedule: Literal["constant", "cosine"] = "constant"
    early_stopping: EarlyStoppingSpec | None = None
    # model.freeze_base: epochs above train the head on a frozen base, these then train everything
    fine_tune_epochs: int = Field(0, ge=0, le=10000)
    fine_tune_lr: float | None = Field(None, gt=0)  # default: learning_rate / 10
    qat: QatSpec | None = None  # adds an int8 variant fine-tuned with fake quantization (see PipelineSpec._qat_variant)


# edgetpu: int8 + Edge TPU compatibility check + edgetpu_compiler (edgeq/stages/edgetpu.py)
# weight_only: int8 weights dequantized to float at load, float compute (the LiteRT quantizer, edgeq[tflite-quant])
VariantType = Literal["fp32", "int8", "dynamic", "float16", "int16x8", "edgetpu", "weight_only"]


class GatesSpec(Spec):
    max_accuracy_drop: float | None = Field(None, ge=0.0, le=1.0)  # in accuracy units: 0.005 = 0.5 points
    min_accuracy: float | None = Field(None, ge=0.0, le=1.0)
    max_size_bytes: int | None = Field(None, ge=1)


class VariantSpec(Spec):
    type: VariantType
    name: str | None = Field(None, pattern=NAME_RE)
    calibration_samples: int = Field(200, ge=1, le=100000)  # int8 / int16x8
    io: Literal["int8", "uint8", "float"] = "int8"  # int8: model input/output type
    # False: one scale per weight tensor. For tflite-runtime 2.14 on aarch64, which crashes in invoke() on
    # some of TF 2.21's per-channel int8 FULLY_CONNECTED layers (tests/test_aarch64_board.py, test_mixed_fleet.py).
    per_channel: bool = True
    # which training rows calibrate int8 / int16x8: seeded random, the first N, or N/classes per class
    calibration_selection: Literal["random", "first", "class_balanced"] = "random"
    # int8: activation ranges from min/max (TFLite's own), or from histograms (edgeq/stages/calibrate.py)
    calibration_method: Literal["minmax", "percentile", "mse"] = "minmax"
    calibration_percentile: float = Field(99.999, gt=50.0, le=100.0)  # percentile: upper bound (lower = 100 - it)
    # int8 only: max drop vs fp32 (0.005 = 0.5 points); when plain int8 misses it, the layers that hurt
    # most stay float (mixed precision, edgeq/stages/mixed.py)
    accuracy_budget: float | None = Field(None, ge=0.0, le=1.0)
    gates: GatesSpec | None = None  # overrides validate.gates for this variant
    qat: bool = False  # int8 from quantization-aware training (train.qat) instead of calibration

    @model_validator(mode="after")
    def _qat_int8(self) -> VariantSpec:
        if self.qat and self.type != "int8":
            raise ValueError(f"qat: true applies to int8 variants only (this variant is {self.type})")
        if self.qat and self.accuracy_budget is not None:
            raise ValueError(
                "accuracy_budget does not apply to a qat variant (QAT learns its ranges: there is no "
                "calibration to redo); put the budget on a PTQ int8 variant"
            )
        return self

    @model_validator(mode="after")
    def _quant_options(self) -> VariantSpec:
        if self.accuracy_budget is not None and self.type != "int8":
            if self.type == "edgetpu":
                raise ValueError(
                    "accuracy_budget is not allowed on edgetpu variants: it keeps layers in float, and "
                    "float islands split an Edge TPU graph between the TPU and the CPU"
                )
            raise ValueError(f"accuracy_budget applies to int8 variants only (this variant is {self.type})")
        if "calibration_selection" in self.model_fields_set and self.type not in ("int8", "int16x8", "edgetpu"):
            raise ValueError(
                f"calibration_selection applies to int8, int16x8 and edgetpu variants only (this variant is {self.type})"
            )
        hist = {"calibration_method", "calibration_percentile"} & self.model_fields_set
        if hist and self.type != "int8":
            raise ValueError(f"{' and '.join(sorted(hist))} applies to int8 variants only (this variant is {self.type})")
        if "calibration_percentile" in self.model_fields_set and self.calibration_method != "percentile":
            raise ValueError("calibration_percentile needs calibration_method: percentile")
        return self

    @property
    def key(self) -> str:
        return self.name or self.type


class QuantizeSpec(Spec):
    variants: list[VariantSpec] = Field(default_factory=lambda: [VariantSpec(type="fp32"), VariantSpec(type="int8")])

    @model_validator(mode="after")
    def _unique(self) -> QuantizeSpec:
        keys = [v.key for v in self.variants]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise ValueError(f"duplicate variant names {sorted(dup)}: give each a distinct 'name'")
        if not self.variants:
            raise ValueError("list at least one variant")
        return self


class ValidateSpec(Spec):
    gates: GatesSpec = Field(default_factory=GatesSpec)
    batch_size: int = Field(256, ge=1)


class DeployStageSpec(Spec):
    targets: list[str] = Field(min_length=1)  # device names or tags from devices.yaml
    variants: list[str] | None = None  # default: every variant
    parallel: int = Field(5, ge=1, le=256)


class BenchmarkStageSpec(Spec):
    targets: list[str] | None = Field(None, min_length=1)  # default: deploy.targets
    variants: list[str] | None = None  # default: every variant
    runs: int = Field(50, ge=1, le=1_000_000)  # in total over the sessions (each runs ceil(runs / sessions))
    warmup: int = Field(5, ge=0, le=100_000)  # per session: each one is a fresh interpreter
    min_seconds: float = Field(1.0, ge=0.0, le=3600.0)  # in total over the sessions
    # independent sessions (a fresh agent process and interpreter each), variants interleaved A B A B ...;
    # 5 (edgeq.fleet.sessions.DEFAULT_SESSIONS says why): robust to two slowed sessions of five, at about one
    # session's timed cost in total plus four agent starts
    sessions: int = Field(5, ge=1, le=100)
    # self-sizing (`edgeq bench --ci-target`): after `sessions`, add sessions until the p50 interval's half-width is
    # within ci_target percent of the p50 ("2%" or 2), or max_sessions / max_seconds run out (edgeq.fleet.sessions)
    ci_target: str | float | None = None
    max_sessions: int = Field(20, ge=1, le=100)
    max_seconds: float | None = Field(None, ge=0.0)
    # re-measure the last successful run's artifact of each changed variant in the same sessions (A A' B B' ...),
    # so compare tells a model change from a board or runtime change (`edgeq run --rerun-baseline`)
    rerun_baseline: bool = False
    threads: list[int] | None = Field(None, min_length=1)  # default: each device's threads
    inputs: Literal["random", "test"] = "test"  # "test": the first test-split rows, preprocessed like training
    input_samples: int = Field(64, ge=1, le=100_000)
    accuracy_check: bool = False  # run the whole test split on the board and compare with validate
    # board vs validate accuracy (0..1) beyond which the check fails. Not 0: the host validates with XNNPACK's
    # int8 kernels, a board's runtime may use TFLite's reference ones (1 of 10,000 Fashion-MNIST answers differs)
    accuracy_tolerance: float = Field(0.001, ge=0.0, le=1.0)
    # after benchmarking, the numeric check (edgeq numerics) of each variant on each board: `numeric_rows` golden
    # test rows stored beside the run's artifacts go through the model with every intermediate tensor kept, on the
    # board and on this host; the first op over the tolerance (quantization steps; relative for float tensors) is
    # reported and fails the run (exit 8, as a board that fails to benchmark)
    numeric_check: bool = False
    # after the latency sessions, as many per-op profiling sessions (LiteRT CompiledModel profiler; `edgeq bench --ops`),
    # stored with the run (docs/measurement.md: where the time goes)
    ops: bool = False
    numeric_rows: int = Field(4, ge=1, le=1000)
    numeric_tolerance_lsb: float = Field(1.0, ge=0.0)
    numeric_tolerance_rel: float = Field(1e-3, ge=0.0)
    parallel: int = Field(5, ge=1, le=256)
    # bench controls (edgeq.config.benchcontrols): win over each device's own devices.yaml keys, key by key
    cooldown: CooldownSpec | None = None
    cpu_affinity: list[int] | None = Field(None, min_length=1)
    governor: Literal["performance"] | None = None
    sustained: SustainedSpec | None = None
    hot_temp_c: float | None = Field(None, gt=0, le=150)
    foreign_load: float | None = Field(None, ge=0, le=1000)
    state_interval_s: float | None = Field(None, ge=0, le=60)

    @field_validator("threads")
    @classmethod
    def _pos(cls, v):
        if v is not None and any(t < 1 for t in v):
            raise ValueError("thread counts must be >= 1")
        return v

    @field_validator("ci_target")
    @classmethod
    def _pct(cls, v):
        if v is not None:
            raw = str(v).strip().removesuffix("%").strip()
            try:
                pct = float(raw)
            except ValueError:
                raise ValueError(f"ci_target must be a percentage such as 2% (got {v!r})") from None
            if not 0.0 < pct < 100.0:
                raise ValueError("ci_target must be above 0 % and below 100 %")
        return v

    def controls(self) -> BenchControlsSpec:
        keys = BenchControlsSpec.model_fields
        return BenchControlsSpec.model_validate({k: getattr(self, k) for k in keys if getattr(self, k) is not None})


class PipelineSpec(Spec):
    name: str = Field(pattern=NAME_RE)
    description: str = ""
    seed: int = 42
    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec
    train: TrainSpec = Field(default_factory=TrainSpec)
    quantize: QuantizeSpec = Field(default_factory=QuantizeSpec)
    validate_: ValidateSpec = Field(default_factory=ValidateSpec, alias="validate")
    devices: str | None = None  # devices.yaml for deploy/benchmark (default: $EDGEQ_DEVICES, ./devices.yaml, local)
    deploy: DeployStageSpec | None = None
    benchmark: BenchmarkStageSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _qat_variant(cls, data: Any) -> Any:
        """train.qat alone adds an 'int8-qat' variant (io, per_channel, gates of the first int8 one), so the
        validate table compares PTQ and QAT; a variant listed with qat: true replaces it."""
        train = data.get("train") if isinstance(data, dict) else None
        if not isinstance(train, dict) or train.get("qat") is None:
            return data
        quantize = data.get("quantize") or {}
        variants = quantize.get("variants", [{"type": "fp32"}, {"type": "int8"}]) if isinstance(quantize, dict) else None
        if not isinstance(variants, list) or any(isinstance(v, dict) and v.get("qat") for v in variants):
            return data
        ptq = next((v for v in variants if isinstance(v, dict) and v.get("type") == "int8"), {})
        added = {
            "type": "int8",
            "name": "int8-qat",
            "qat": True,
            **{k: ptq[k] for k in ("io", "per_channel", "gates") if k in ptq},
        }
        return {**data, "quantize": {**quantize, "variants": [*variants, added]}}

    @model_validator(mode="after")
    def _fleet_refs(self) -> PipelineSpec:
        # unknown deploy/benchmark variants: _check_refs (it names the entry's line)
        if self.benchmark is not None and self.benchmark.targets is None and self.deploy is None:
            raise ValueError("benchmark.targets is required when there is no deploy stage")
        qat = [v.key for v in self.quantize.variants if v.qat]
        if qat and self.train.qat is None:
            raise ValueError(f"variant(s) {qat} have qat: true but train.qat is not set (e.g. train: {{qat: {{epochs: 2}}}})")
        return self

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
