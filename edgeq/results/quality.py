"""A variant's quantization-quality analysis, as the history stores it and as tables and reports show it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgeq.records import Record, RecordError
from edgeq.records.run import VariantResult

Num = int | float  # as the manifest wrote it: 1 stays 1


class MixedSummary(Record):
    """The outcome of a mixed-precision search: which layers stayed float and what it cost."""

    met: bool | None = None
    budget: Num | None = None
    int8_op_fraction: Num | None = None
    float_layers: tuple[str | None, ...] = ()
    size_ratio_vs_plain: Num | None = None
    latency_ratio_vs_plain: Num | None = None


class WorstLayer(Record):
    layer: str | None = None
    op: str | None = None
    rmse_scale: Num | None = None
    max_abs_error: Num | None = None


class QualitySummary(Record):
    """What the history keeps of a variant's quantization-quality analysis (the manifest keeps all of it)."""

    qat: bool | None = None  # only a QAT variant has it (as true)
    mixed_precision: MixedSummary | None = None
    worst_layers: tuple[WorstLayer, ...] | None = None  # the three worst int8 layers

    omit_if_none = frozenset({"qat", "mixed_precision", "worst_layers"})


def quality_summary(v: VariantResult | Mapping[str, Any]) -> QualitySummary:
    """The summary of one manifest variant (a VariantResult; a manifest dict is read as one)."""
    if not isinstance(v, VariantResult):
        try:
            v = VariantResult.from_json(v)
        except RecordError:
            return QualitySummary()  # a variant that never got an artifact has nothing to analyse
    mp = v.mixed_precision
    mixed = None
    if mp is not None:
        mixed = MixedSummary(
            met=mp.met,
            budget=mp.budget,
            int8_op_fraction=mp.int8_op_fraction,
            float_layers=tuple(_layer_name(f) for f in mp.float_layers or ()),
            size_ratio_vs_plain=mp.size_ratio_vs_plain,
            latency_ratio_vs_plain=mp.latency_ratio_vs_plain,
        )
    worst = v.layer_errors.worst if v.layer_errors is not None else None
    return QualitySummary(
        qat=True if v.qat else None,
        mixed_precision=mixed,
        worst_layers=tuple(
            WorstLayer(layer=w.layer, op=w.op, rmse_scale=w.rmse_scale, max_abs_error=w.max_abs_error) for w in worst[:3]
        )
        if worst
        else None,
    )


class _FloatLayer(Record):
    """One entry of a mixed-precision search's `float_layers` (edgeq.stages.mixed)."""

    layer: str | None = None
    op: str | None = None
    tensor: str | None = None


def _layer_name(f: Mapping[str, Any]) -> str | None:
    return _FloatLayer.from_stored(f).layer


def quality_note(q: QualitySummary, *, qat: bool = True) -> str:
    """One line for a table: the mixed-precision outcome, else the worst int8 layer, and (qat) whether it is QAT."""
    parts = []
    mp = q.mixed_precision
    if mp:
        names = [n or "" for n in mp.float_layers]
        frac = mp.int8_op_fraction
        parts.append(f"{len(names)} layer(s) kept float: {', '.join(names)}" if names else "plain int8 met the budget")
        if frac is not None:
            parts.append(f"{frac * 100:.0f}% of ops int8")
        if not mp.met:
            parts.append("budget NOT met")
    elif q.worst_layers:
        w = q.worst_layers[0]
        rs = w.rmse_scale
        parts.append(f"worst layer {w.layer} ({w.op})" + ("" if rs is None else f" RMSE/scale {rs:.2f}"))
    if qat and q.qat:
        parts.append("quantization-aware training")
    return "; ".join(parts)
