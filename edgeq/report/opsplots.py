"""The report's per-op charts (matplotlib, Agg, imported inside): where the time goes, and fp32 vs a quantized variant
op by op. Each returns a base64 PNG or None. Board text (op, kernel, device names) goes through `_t`."""

from __future__ import annotations

from edgeq.records.ops import OpProfile
from edgeq.report.opsview import TOP, OpPair, label, losers
from edgeq.report.plots import _fig, _png, _t
from edgeq.results.ops import top_ops


def _where(p: OpProfile) -> str:
    return f"{p.variant} on {p.device} ({p.threads} thr)"


def ops_plot(profiles: list[OpProfile], n: int = TOP) -> str | None:
    """One panel per profile: the n slowest ops' median of session medians with the session interval, the rest as
    one `other` bar, Invoke and coverage in the title."""
    ok = [p for p in profiles if p.kind == "ok" and p.ops]
    if not ok:
        return None
    Figure = _fig()
    fig = Figure(figsize=(10, 0.28 * (n + 4) * len(ok) + 0.6))
    axes = fig.subplots(len(ok), 1, squeeze=False)[:, 0]
    for ax, p in zip(axes, ok, strict=True):
        top = top_ops(p, n)
        shown = {o.node for o in top}
        rest = [o for o in p.ops if o.node not in shown]
        names = [_t(label(o)) for o in top]
        vals = [o.p50_us for o in top]
        lo = [o.p50_us - (o.ci_low_us if o.ci_low_us is not None else o.p50_us) for o in top]
        hi = [(o.ci_high_us if o.ci_high_us is not None else o.p50_us) - o.p50_us for o in top]
        if rest:
            names.append(f"other ({len(rest)} ops)")
            vals.append(sum(o.p50_us for o in rest))
            lo.append(0.0)
            hi.append(0.0)
        ys = list(range(len(vals)))[::-1]
        ax.barh(ys, vals, xerr=[lo, hi], color=["#4c78a8"] * len(top) + ["#bab0ac"] * bool(rest), capsize=2)
        ax.set_yticks(ys)
        ax.set_yticklabels(names, fontsize=7)
        inv = p.invoke.p50_us if p.invoke else None
        cov = "" if p.coverage is None else f", rows cover {100 * p.coverage:.0f}% of it"
        ax.set_title(
            _t(f"{_where(p)}: Invoke p50 {inv:.0f} µs{cov}, {p.sessions} sessions" if inv else _where(p)),
            loc="left",
            fontsize=9,
        )
        ax.set_xlabel("µs per inference (median of session medians; bars: session interval)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def pair_plot(ref: OpProfile, other: OpProfile, pairs: list[OpPair], n: int = TOP) -> str | None:
    """The n ops that lose most time in `other` against fp32 `ref`, the two variants' bars side by side."""
    shown = [p for p in losers(pairs, n) if p.ref is not None and p.other is not None]
    if not shown:
        return None
    Figure = _fig()
    fig = Figure(figsize=(10, 0.36 * len(shown) + 1.4))
    ax = fig.subplots()
    ys = list(range(len(shown)))[::-1]
    ax.barh([y + 0.2 for y in ys], [p.ref.p50_us for p in shown if p.ref], height=0.4, label=_t(ref.variant), color="#4c78a8")
    ax.barh(
        [y - 0.2 for y in ys], [p.other.p50_us for p in shown if p.other], height=0.4, label=_t(other.variant), color="#e45756"
    )
    ax.set_yticks(ys)
    ax.set_yticklabels([_t(f"{label(p.other)}" + (" *" if p.how == "node order" else "")) for p in shown if p.other], fontsize=7)
    ax.set_title(
        _t(f"{other.variant} vs {ref.variant} on {ref.device} ({ref.threads} thr): the ops that lose most"),
        loc="left",
        fontsize=9,
    )
    ax.set_xlabel("µs per inference (median of session medians); * paired by node order", fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _png(fig)
