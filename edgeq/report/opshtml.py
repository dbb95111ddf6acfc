"""The report's per-op section: where the time goes per board and variant, and each quantized variant beside fp32 on
the same board, op by op (edgeq.report.opsview says how ops are paired). Board text is escaped (`_e`, `_t`)."""

from __future__ import annotations

from edgeq.records.ops import OpProfile
from edgeq.report.htmlkit import _e, _table
from edgeq.report.opsplots import ops_plot, pair_plot
from edgeq.report.opsview import TOP, label, losers, pair_counts, pair_ops, variant_pairs
from edgeq.results.compare import Comparison
from edgeq.results.rows import StoredRun


def _us(x: float | None) -> str:
    return "" if x is None else f"{x:.0f}" if x >= 10 else f"{x:.1f}"


def _status(p: OpProfile) -> str:
    where = f"{p.variant} on {p.device} ({p.threads} thr)"
    if p.kind == "unsupported":
        return f"{where}: not profiled: {p.reason} Fix: {p.fix}"
    if p.kind == "failed":
        return f"{where}: profiling failed: {p.error}" + (f" ({p.hint})" if p.hint else "")
    inv = p.invoke.p50_us if p.invoke else None
    unp = p.unprofiled.p50_us if p.unprofiled else None
    cov = "-" if p.coverage is None else f"{100 * p.coverage:.0f}%"
    return (
        f"{where}: {len(p.ops)} ops, {p.sessions} sessions, Invoke p50 {_us(inv)} µs, coverage {cov} "
        f"(sum of op p50s / Invoke p50); CompiledModel unprofiled p50 {_us(unp)} µs, Interpreter p50 "
        f"{_us(p.interpreter_p50_us)} µs; kernels {p.fingerprint} ({p.runtime})"
    )


def ops_section(profiles: list[OpProfile], types: dict[str, str | None]) -> list[str]:
    """HTML parts of the per-op section ([] without profiles)."""
    if not profiles:
        return []
    parts = [
        "<h2 id='ops'>Where the time goes (per-op profiles)</h2>",
        "<p class='meta'>LiteRT CompiledModel with its profiler, in sessions of their own after the latency sessions. "
        f"Bars: the {TOP} slowest ops (median of session medians, session interval), the rest as one bar. "
        "A model op marked ~ is a guessed mapping (XNNPACK events carry no op index).</p>",
        "<ul>" + "".join(f"<li>{_e(_status(p))}</li>" for p in profiles) + "</ul>",
    ]
    img = ops_plot(list(profiles))
    if img:
        parts.append(f"<img alt='where the time goes per op' src='{img}'>")
    for ref, other in variant_pairs(list(profiles), types):
        pairs = pair_ops(ref, other)
        parts.append(f"<h3>{_e(other.variant)} vs {_e(ref.variant)} on {_e(ref.device)} ({ref.threads} thr), op by op</h3>")
        parts.append(
            f"<p class='meta'>ops paired: {_e(pair_counts(pairs))}. Invoke p50 {_us(ref.invoke.p50_us if ref.invoke else None)}"
            f" → {_us(other.invoke.p50_us if other.invoke else None)} µs.</p>"
        )
        img = pair_plot(ref, other, pairs)
        if img:
            parts.append(f"<img alt='{_e(other.variant)} vs {_e(ref.variant)} per op' src='{img}'>")
        rows = [
            [
                label(p.other) if p.other else label(p.ref) if p.ref else "",
                _us(p.ref.p50_us if p.ref else None),
                _us(p.other.p50_us if p.other else None),
                "" if p.ratio is None else f"{p.ratio:.2f}",
                f"{p.loss_us:+.0f}",
                p.ref.kernel if p.ref else "",
                p.other.kernel if p.other else "",
                p.how,
            ]
            for p in losers(pairs)
        ]
        cols = ["op (model op)", f"{ref.variant} µs", f"{other.variant} µs", "ratio", "µs lost", f"{ref.variant} kernel"]
        parts.append(_table([*cols, f"{other.variant} kernel", "paired by"], rows))
    return parts


def layer_cost_section(run: StoredRun, profiles: list[OpProfile]) -> list[str]:
    """The worst int8 layers by error with their measured time (edgeq.report.layercost); [] without both."""
    from edgeq.report.layercost import layer_costs

    rows, why = layer_costs(run, profiles)
    if not rows:
        return [f"<p class='meta'>worst layers by error and cost: not shown, {_e(why)}</p>"] if why else []
    cells = [
        [
            r.variant,
            f"{r.device} ({r.threads} thr)",
            r.layer,
            r.op,
            "" if r.rmse_scale is None else f"{r.rmse_scale:.2f}",
            "" if r.max_abs_error is None else f"{r.max_abs_error:.3g}",
            "" if r.op_index is None else r.op_index,
            "" if r.time is None else ("" if r.time.mapping == "exact" else "~") + _us(r.time.p50_us),
            "" if r.time is None or r.time.share is None else f"{100 * r.time.share:.1f}%",
            "" if r.time is None else r.time.mapping,
        ]
        for r in rows
    ]
    cols = ["variant", "board", "layer", "op", "RMSE / scale", "max abs error", "model op #", "p50 µs", "share"]
    return [
        "<h3>Worst int8 layers: quantization error and measured time</h3>",
        "<p class='meta'>Layers by RMSE in quantization steps (TFLite's QuantizationDebugger); the model op is the one "
        "writing the layer's tensor in the artifact (exact, by name); its time comes from the profile, ~ = a guessed "
        "op mapping (XNNPACK rows carry no op index).</p>",
        _table([*cols, "time mapping"], cells),
    ]


def kernel_changes(c: Comparison) -> str:
    """The kernel changes of a comparison, or that the profiles agree ("" when the runs share no profile)."""
    if c.kernel_changes is None:
        return ""
    if not c.kernel_changes:
        return "<p class='ok'>per-op profiles of both runs: every op ran the same kernel</p>"
    rows = [[k.device, k.variant, k.threads, k.node, k.op, k.base_kernel, k.candidate_kernel] for k in c.kernel_changes]
    return "<h3>Kernel changes (same op, other kernel)</h3>" + _table(
        ["device", "variant", "threads", "node", "op", "base kernel", "candidate kernel"], rows
    )
