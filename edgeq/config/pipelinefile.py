"""Reading a pipeline file: YAML with lines -> a validated PipelineSpec, then the rules across sections that a
single key's validator cannot see (duplicates, variant references, a model made elsewhere), each error at its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeq.config.pipeline import PipelineSpec
from edgeq.config.reader import read_yaml, validate, where
from edgeq.errors import ConfigError

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


class PipelineFile:
    """A validated pipeline spec, its folder, and where each of its keys is (for errors found later)."""

    def __init__(self, spec: PipelineSpec, base: Path, file: str, lines: dict):
        self.spec, self.base, self.file, self._lines = spec, base, file, lines

    def where(self, key_path: tuple) -> str:
        """'file:line: key.path' of a key of the pipeline YAML."""
        return where(self.file, self._lines, key_path)


def read_pipeline(path: str | Path) -> PipelineFile:
    """Load a pipeline YAML, keeping the line of every key. Relative paths resolve against its folder."""
    data, lines = read_yaml(path)
    _check_duplicates(data, str(path), lines)
    spec = validate(PipelineSpec, data, str(path), lines)
    _check_refs(spec, str(path), lines)
    _check_pipeline(spec, str(path), lines)
    return PipelineFile(spec, Path(path).resolve().parent, str(path), lines)


def load_pipeline(path: str | Path) -> tuple[PipelineSpec, Path]:
    """Load a pipeline YAML. Relative data/model paths resolve against the YAML's folder."""
    p = read_pipeline(path)
    return p.spec, p.base


# lists whose entries name series (a Prometheus label each): a repeated entry would measure and export twice
_UNIQUE_LISTS = (("benchmark", "threads"), ("benchmark", "variants"), ("deploy", "variants"))


def _check_duplicates(data: Any, file: str, lines: dict) -> None:
    """Repeated threads, variants or variant keys, named at the repeat's line (before validation reorders nothing)."""
    if not isinstance(data, dict):
        return
    lists: list[tuple[tuple, list]] = []
    for section, key in _UNIQUE_LISTS:
        sec = data.get(section)
        if isinstance(sec, dict) and isinstance(sec.get(key), list):
            lists.append(((section, key), sec[key]))
    quantize = data.get("quantize")
    variants = quantize.get("variants") if isinstance(quantize, dict) else None
    if isinstance(variants, list):
        keys = [v.get("name") or v.get("type") if isinstance(v, dict) else None for v in variants]
        lists.append((("quantize", "variants"), keys))
    for path, items in lists:
        seen: dict[Any, int] = {}
        for i, item in enumerate(items):
            if item is None or isinstance(item, (dict, list, float)):
                continue  # not a plain entry: validation says what is wrong with it
            if item in seen:
                what = "variant key" if path == ("quantize", "variants") else "entry"
                first = where(file, lines, (*path, seen[item])).split(": ", 1)[0]
                raise ConfigError(
                    f"{where(file, lines, (*path, i))}: duplicate {what} {item!r} (first at {first}): "
                    "each would be measured and exported twice, as the same series",
                    "remove the repeated entry" + ("; give each variant a distinct 'name'" if what == "variant key" else ""),
                )
            seen[item] = i


def _check_refs(spec: PipelineSpec, file: str, lines: dict) -> None:
    """deploy/benchmark variants name variants of quantize.variants."""
    keys = {v.key for v in spec.quantize.variants}
    for section, stage in (("deploy", spec.deploy), ("benchmark", spec.benchmark)):
        for i, x in enumerate((stage.variants if stage is not None else None) or ()):
            if x not in keys:
                raise ConfigError(
                    f"{where(file, lines, (section, 'variants', i))}: unknown variant(s) {[x]}; "
                    f"the pipeline's variants are {sorted(keys)}",
                    "name a variant listed under quantize.variants (its name, else its type)",
                )


def _check_pipeline(spec: PipelineSpec, file: str, lines: dict) -> None:
    """Rules across sections, checked before anything runs."""
    check_tflite_source(spec, file, lines)
    has_fp32 = any(v.type == "fp32" for v in spec.quantize.variants)
    wants_drop = spec.validate_.gates.max_accuracy_drop is not None or any(
        v.gates and v.gates.max_accuracy_drop is not None for v in spec.quantize.variants
    )
    if wants_drop and not has_fp32:
        raise ConfigError(
            f"{file}: max_accuracy_drop needs an fp32 variant as the baseline", "add '- type: fp32' under quantize.variants"
        )
    budget = [i for i, v in enumerate(spec.quantize.variants) if v.accuracy_budget is not None]
    if budget and spec.data.validation_split == 0:
        loc = where(file, lines, ("quantize", "variants", budget[0], "accuracy_budget"))
        raise ConfigError(
            f"{loc}: accuracy_budget needs a validation split (data.validation_split is 0): the "
            "mixed-precision search measures there, never on the test split",
            "set data.validation_split, e.g. 0.1",
        )
    if spec.train.fine_tune_epochs and not spec.model.freeze_base:
        raise ConfigError(
            f"{where(file, lines, ('train', 'fine_tune_epochs'))}: fine_tune_epochs needs model.freeze_base: true "
            "(without a frozen phase, train.epochs already trains every layer)",
            "set model.freeze_base: true with model.weights, or add the fine-tune epochs to train.epochs",
        )
