"""A variant's quantization-quality analysis, as the history stores it and as tables and reports show it."""

from __future__ import annotations


def quality_summary(v: dict) -> dict:
    """What the history keeps of a variant's quantization-quality analysis (the manifest keeps all of it)."""
    out: dict = {}
    if v.get("qat"):
        out["qat"] = True
    mp = v.get("mixed_precision")
    if isinstance(mp, dict):
        out["mixed_precision"] = {
            "met": mp.get("met"),
            "budget": mp.get("budget"),
            "int8_op_fraction": mp.get("int8_op_fraction"),
            "float_layers": [f.get("layer") for f in mp.get("float_layers") or [] if isinstance(f, dict)],
            "size_ratio_vs_plain": mp.get("size_ratio_vs_plain"),
            "latency_ratio_vs_plain": mp.get("latency_ratio_vs_plain"),
        }
    worst = (v.get("layer_errors") or {}).get("worst") if isinstance(v.get("layer_errors"), dict) else None
    if worst:
        out["worst_layers"] = [
            {k: w.get(k) for k in ("layer", "op", "rmse_scale", "max_abs_error")} for w in worst[:3] if isinstance(w, dict)
        ]
    return out


def quality_note(q: dict) -> str:
    """One line for a table: the mixed-precision outcome, else the worst int8 layer, and whether it is QAT."""
    parts = []
    mp = q.get("mixed_precision")
    if mp:
        names = mp.get("float_layers") or []
        frac = mp.get("int8_op_fraction")
        parts.append(f"{len(names)} layer(s) kept float: {', '.join(names)}" if names else "plain int8 met the budget")
        if frac is not None:
            parts.append(f"{frac * 100:.0f}% of ops int8")
        if not mp.get("met"):
            parts.append("budget NOT met")
    elif q.get("worst_layers"):
        w = q["worst_layers"][0]
        rs = w.get("rmse_scale")
        parts.append(f"worst layer {w.get('layer')} ({w.get('op')})" + ("" if rs is None else f" RMSE/scale {rs:.2f}"))
    if q.get("qat"):
        parts.append("quantization-aware training")
    return "; ".join(parts)
