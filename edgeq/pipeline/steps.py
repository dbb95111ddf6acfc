"""The pipeline's cached stages: each takes the run context and returns its record (edgeq.records.run).

The stage functions (edgeq/stages/) return records (edgeq.records.stages); they become JSON only where a
cache entry's meta.json is written (the `build` callbacks handed to ctx.cached), and that document is read
back into the manifest's record with `from_stored`.

TensorFlow is imported only inside a stage that has to build something: a run whose stages are all
cached never imports it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

from edgeq.config import VariantSpec
from edgeq.data import zoo
from edgeq.errors import ConfigError
from edgeq.hashing import file_sha256
from edgeq.pipeline.cache import CACHE_VERSION, stage_key
from edgeq.pipeline.context import RunContext
from edgeq.records.run import (
    GateOutcome,
    LayerErrors,
    MixedPrecision,
    QuantizeStage,
    TrainStage,
    ValidateStage,
    VariantResult,
)
from edgeq.records.stages import QuantizeOutput, TorchConversion, TrainOutput
from edgeq.stages import litert, qat, torchsrc
from edgeq.stages.convert import convert
from edgeq.stages.interpreter import Runtime
from edgeq.stages.quantize import calibration_set, quantize
from edgeq.stages.train import train as train_model
from edgeq.stages.validate import check_gates, evaluate, layer_errors_of
from edgeq.stages.variants import builder, kind

LAYER_ERRORS_VERSION = 1  # int8 validate outputs carry per-layer error statistics (edgeq/stages/debug.py)


def train_stage(ctx: RunContext, data_key: str, model_fp: dict) -> TrainStage:
    spec = ctx.spec
    key = stage_key(
        {
            "v": CACHE_VERSION,
            "stage": "train",
            "data": data_key,
            "model": spec.model.model_dump(mode="json"),
            "model_fp": model_fp,
            "train": spec.train.model_dump(mode="json", exclude={"qat"}),
            "seed": spec.seed,
            "libs": ctx.tf_versions,
        }
    )  # train.qat fine-tunes a copy: turning it on must not retrain the float model
    if spec.model.tflite:  # trained elsewhere: the quantize stage reads the file (edgeq/stages/litert.py)
        path = zoo.tflite_file(spec.model, ctx.base)
        return TrainStage(key=key, cached=True, skipped="float .tflite input", output=str(path))
    if spec.model.torch:  # trained elsewhere: converted to a float .tflite, then as model.tflite
        key = stage_key(
            {"v": CACHE_VERSION, "stage": "torch", "data": data_key, "model": spec.model.model_dump(mode="json")}
            | {"model_fp": model_fp, "converter": torchsrc.converter_version()}
        )
        out, cached, meta = ctx.cached("torch", key, lambda tmp: _convert_torch(ctx, tmp).to_json(), label="convert torch")
        return TrainStage.from_stored({"key": key, "cached": cached, "output": str(out / "model.tflite"), **meta})
    if zoo.is_saved_model(spec.model, ctx.base):
        if spec.train.epochs:
            raise ConfigError(
                f"model.path {spec.model.path} is a SavedModel directory: it can be quantized but not trained",
                "set train.epochs: 0, or give a .keras file",
            )
        path = zoo.saved_model_dir(spec.model, ctx.base)
        return TrainStage(key=key, cached=True, skipped="SavedModel input", output=str(path))
    out, cached, meta = ctx.cached("train", key, lambda tmp: _train(ctx, tmp).to_json())
    return TrainStage.from_stored({"key": key, "cached": cached, "output": str(out / "model.keras"), **meta})


def _convert_torch(ctx: RunContext, tmp: Path) -> TorchConversion:
    ds = ctx.dataset()
    return torchsrc.convert_torch(ctx.spec.model, ctx.base, ds.input_shape, ds.num_classes, tmp, ctx.log)


def _train(ctx: RunContext, tmp: Path) -> TrainOutput:
    spec, ds = ctx.spec, ctx.dataset()
    ctx.log(
        f"  training {spec.model.builtin or spec.model.path or spec.model.factory} on {len(ds.x_train)} samples "
        f"({spec.train.epochs} epochs, batch {spec.train.batch_size})"
    )
    return train_model(spec, ctx.base, ds, tmp, ctx.log)


def quantize_stage(ctx: RunContext, v: VariantSpec, train: TrainStage, data_key: str) -> tuple[QuantizeStage, VariantResult]:
    """One variant's .tflite (cached), linked into the run's artifacts; the variant's manifest entry so far."""
    spec = ctx.spec
    common = {"train": train.key, "variant": v.model_dump(mode="json", exclude={"gates", "name"}), "seed": spec.seed}
    route = builder(v, spec.model.made_elsewhere)
    if route == "qat":  # fine-tuned with fake quantization in a tf-keras child process (edgeq/stages/qat.py)
        libs = {**ctx.tf_versions, **qat.versions().to_json()}
        key = stage_key(
            {"v": CACHE_VERSION, "stage": "qat", "data": data_key, "train_spec": spec.train.model_dump(mode="json")}
            | common
            | {"libs": libs}
        )
        saved = train.skipped is not None

        def build(tmp: Path) -> dict:
            return qat.run_qat(spec, ctx.base, v, Path(train.output), tmp, ctx.log, saved_model=saved).to_json()

        out, cached, meta = ctx.cached("qat", key, build, label=f"qat {v.key}")
    else:
        libs = ctx.tf_versions | ({"quantizer": litert.quantizer_version()} if route == "litert" else {})
        key = stage_key({"v": CACHE_VERSION, "stage": "quantize"} | common | {"libs": libs})
        out, cached, meta = ctx.cached(
            "quantize", key, lambda tmp: _quantize(ctx, v, train, tmp).to_json(), label=f"quantize {v.key}"
        )
    model = out / "model.tflite"
    stage = QuantizeStage.from_stored({"key": key, "cached": cached, "output": str(model), **meta})
    art = ctx.run_dir / "artifacts" / f"{spec.name}-{v.key}.tflite"
    _link(model, art)
    entry: dict[str, Any] = {"type": v.type, **({"qat": True} if v.qat else {})}
    entry |= {"artifact": str(art), "sha256": file_sha256(model), "size_bytes": stage.size_bytes}
    if stage.mixed_precision:
        mp = _mixed_summary(stage.mixed_precision)
        entry["mixed_precision"] = mp
        ctx.log(
            f"{v.key}: accuracy_budget {'met' if mp.met else 'NOT met'}; kept float: "
            f"{', '.join(f['layer'] for f in mp.float_layers or ()) or 'none'}; {mp.int8_op_fraction:.0%} of ops int8; "
            f"size x{mp.size_ratio_vs_plain:.2f} and latency x{mp.latency_ratio_vs_plain or 0:.2f} vs plain int8"
        )
    return stage, VariantResult.from_json(entry)


def _quantize(ctx: RunContext, v: VariantSpec, train: TrainStage, tmp: Path) -> QuantizeOutput:
    if builder(v, ctx.spec.model.made_elsewhere) == "litert":
        return _quantize_litert(ctx, v, train, tmp)
    spec, d = ctx.spec, ctx.dataset()
    calib = None
    if kind(v).calibrated:
        calib = calibration_set(d.x_train, v.calibration_samples, spec.seed, v.calibration_selection, d.y_train)
        ctx.log(f"  calibrating {v.key} on {len(calib)} training samples ({v.calibration_selection})")
    return quantize(
        Path(train.output),
        v,
        calib,
        tmp,
        saved_model=train.skipped is not None,
        load_model=lambda mp: zoo.load_trained(mp, spec.model, ctx.base),
        val=(d.x_val, d.y_val) if v.accuracy_budget is not None else None,
        log=ctx.log,
    )


def _quantize_litert(ctx: RunContext, v: VariantSpec, train: TrainStage, tmp: Path) -> QuantizeOutput:
    """A float .tflite (model.tflite, or a Keras model's fp32 conversion for weight_only) through the LiteRT quantizer."""
    spec, d = ctx.spec, ctx.dataset()
    if spec.model.made_elsewhere:
        src = "model.tflite" if spec.model.tflite else f"model.torch {spec.model.torch} converted:"
        blob, where = Path(train.output).read_bytes(), f"{src} {train.output}"
    else:
        saved = train.skipped is not None
        source = Path(train.output) if saved else zoo.load_trained(Path(train.output), spec.model, ctx.base)
        blob, where = convert(source, VariantSpec(type="fp32"), None, saved_model=saved), f"the fp32 conversion of {train.output}"
    if v.type == "fp32":  # the float model itself, checked like the quantized ones
        litert.check_input_fits(litert.float_model_facts(blob, where), d.x_test, where)
        (tmp / "model.tflite").write_bytes(blob)
        return QuantizeOutput(variant=v.key, type=v.type, size_bytes=len(blob), convert_seconds=0.0, calibration_samples=0)
    calib = None
    if kind(v).calibrated:
        calib = calibration_set(d.x_train, v.calibration_samples, spec.seed, v.calibration_selection, d.y_train)
        ctx.log(f"  calibrating {v.key} on {len(calib)} training samples ({v.calibration_selection}, LiteRT quantizer)")
    return litert.quantize_float(blob, v, calib, tmp, where)


def _mixed_summary(mp: dict) -> MixedPrecision:
    """What the manifest shows of a mixed-precision search (the stage meta keeps every step)."""
    return MixedPrecision.from_json({k: mp.get(k) for k in MixedPrecision.model_fields})


def validate_stage(ctx: RunContext, v: VariantSpec, q: QuantizeStage, runtime: Runtime, data_key: str) -> ValidateStage:
    """Accuracy of one variant's .tflite on the test split, through a TFLite interpreter (cached)."""
    spec = ctx.spec
    key = stage_key(
        {
            "v": CACHE_VERSION,
            "stage": "validate",
            "model": q.key,
            "data": data_key,
            "runtime": runtime.describe(),
            "batch": spec.validate_.batch_size,
            **({"layer_errors": LAYER_ERRORS_VERSION} if kind(v).requantized else {}),
        }
    )

    def build(tmp: Path) -> dict:
        d = ctx.dataset()
        # edgetpu: accuracy of the int8 model before compilation (eval_file: same arithmetic, runs on CPU)
        model = Path(q.output).with_name(q.eval_file or "model.tflite")
        measured = evaluate(runtime, model, d.x_test, d.y_test, spec.validate_.batch_size)
        extra = {"layer_errors": layer_errors_of(model.parent, v, d.x_test).to_json()} if kind(v).requantized else {}
        return {**measured.to_json(), "runtime": runtime.describe(), **extra}

    _, cached, meta = ctx.cached("validate", key, build, label=f"validate {v.key}")
    return ValidateStage.from_stored({"key": key, "cached": cached, **meta})


def gate_variants(
    ctx: RunContext, variants: dict[str, VariantResult], validated: dict[str, ValidateStage]
) -> tuple[dict[str, VariantResult], list[str]]:
    """Each variant with its measurements and gate outcome, and every failed gate's message.

    Never cached: gates may change without changing measurements.
    """
    spec = ctx.spec
    base_v = next((v for v in spec.quantize.variants if v.type == "fp32"), None)
    base_m = validated[base_v.key] if base_v else None
    out, failures = {}, []
    for v in spec.quantize.variants:
        m = validated[v.key]
        changes: dict = {"accuracy": m.accuracy, "test_samples": m.test_samples}
        if m.layer_errors is not None and m.layer_errors.to_json():
            changes["layer_errors"] = m.layer_errors
            _log_worst(ctx, v.key, m.layer_errors)
        if base_m is not None:
            changes["accuracy_drop"] = round(base_m.accuracy - m.accuracy, 6)
            changes["size_ratio"] = round(m.size_bytes / base_m.size_bytes, 4)
        entry = variants[v.key].replace(**changes)
        failed = check_gates(v.key, entry, v.gates or spec.validate_.gates, is_baseline=(v is base_v))
        out[v.key] = entry.replace(gates=GateOutcome(passed=not failed, failed=tuple(failed)))
        failures += failed
    return out, failures


def _log_worst(ctx: RunContext, key: str, le: LayerErrors) -> None:
    if le.worst:
        ctx.log(f"{key}: worst int8 layers (RMSE/scale): " + ", ".join(f"{w.layer} {w.op} {w.rmse_scale:.2f}" for w in le.worst))


def _link(src: Path, dst: Path) -> None:
    """dst becomes src (a hard link, else a copy), replaced atomically."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
