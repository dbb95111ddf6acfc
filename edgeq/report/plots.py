"""The report's plots (matplotlib, imported inside the functions, Agg backend): each returns a base64 PNG or None."""

from __future__ import annotations

import base64
import io
from typing import Any

from edgeq import units
from edgeq.results.rows import BenchmarkRow, StoredRun


def _t(x: object) -> str:
    """Text for matplotlib: a `$` in board or YAML text would start math text (and an unbalanced one raise)."""
    return ("" if x is None else str(x)).replace("$", r"\$")  # no `$` left unescaped: matplotlib shows `\$` as `$`


def _fig() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _labels(rows: list[BenchmarkRow]) -> list[str]:
    """One legend label per row, never two alike: variant and threads, then runtime/delegate, then a number."""
    base = [f"{b.variant} · {b.threads} thr" for b in rows]
    if len({(b.device, t) for b, t in zip(rows, base, strict=True)}) < len(base):
        base = [f"{t} · {b.runtime_name or ''} {b.runtime_version or ''}".strip() for t, b in zip(base, rows, strict=True)]
    seen: dict[tuple[str, str], int] = {}
    out = []
    for b, t in zip(rows, base, strict=True):
        k = (b.device, t)
        seen[k] = seen.get(k, 0) + 1
        out.append(t if seen[k] == 1 else f"{t} #{seen[k]}")
    return out


def _n_label(b: BenchmarkRow, kept: int, above: int, top: float, unit: str) -> str:
    """`top`: the largest sample, already in `unit` (the plot's unit, edgeq.units)."""
    timed = b.count or kept
    n = f"n={timed:,} timed" + (f", every {b.samples_stride}th drawn" if (b.samples_stride or 1) > 1 else "")
    tail = f"; {above} beyond the axis, max {top:.4g} {unit}" if above else ""
    return f"p50 {units.latency_s(b.p50_s, unit)} {unit}  ({n}{tail})"


def latency_plot(run: StoredRun) -> str | None:
    benches = [b for b in run.benchmarks if b.ok and b.samples_s and b.p50_s is not None]
    if not benches:
        return None
    import numpy as np

    devices = sorted({b.device for b in benches})
    unit = units.latency_unit_s(b.p50_s for b in benches)
    k = units.scale(unit)
    Figure = _fig()
    fig = Figure(figsize=(10, 3.2 * len(devices)))
    axes = fig.subplots(len(devices), 1, squeeze=False)[:, 0]
    for ax, dev in zip(axes, devices, strict=False):
        rows = [b for b in benches if b.device == dev]
        us = [np.asarray(b.samples_s, dtype=np.float64) * k for b in rows]
        lo = min(float(np.percentile(u, 0.5)) for u in us)
        hi = max(float(np.percentile(u, 99.5)) for u in us)  # the far tail (a scheduler hiccup) would flatten the rest
        if hi <= lo:
            hi = lo * 1.01 + 1e-9
        bins = np.linspace(lo, hi, 80)
        for b, u, name in zip(rows, us, _labels(rows), strict=False):
            above = int((u > hi).sum())  # the tail past the axis is counted in the legend, not silently dropped
            _, _, patches = ax.hist(
                np.clip(u, lo, hi),
                bins=bins,
                histtype="step",
                linewidth=1.6,
                density=True,
                label=f"{_t(name)}  {_t(_n_label(b, len(u), above, float(u.max()), unit))}",
            )
            ax.axvline((b.p50_s or 0) * k, linestyle=":", linewidth=1, color=patches[0].get_edgecolor())
        first = rows[0]
        ax.set_title(_t(f"{dev} ({first.arch or ''} {first.board_model or first.cpu_model or ''})".strip()), loc="left")
        ax.set_xlabel(f"latency per inference ({unit}), 0.5-99.5 percentile range; the last bin holds the tail beyond it")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def accuracy_size_plot(run: StoredRun) -> str | None:
    vals = {k: (v.size_bytes, v.accuracy) for k, v in run.validations.items() if v.accuracy is not None and v.size_bytes}
    if not vals:
        return None
    Figure = _fig()
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for k, (size, acc) in vals.items():
        ax.scatter(size / 1024, acc * 100, s=60)
        ax.annotate(_t(k), (size / 1024, acc * 100), textcoords="offset points", xytext=(6, 4))
    ax.set_xlabel("model size (KiB)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy vs size per variant", loc="left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def trend_plot(runs: list[StoredRun]) -> str | None:
    if not runs:
        return None
    Figure = _fig()
    fig = Figure(figsize=(10, 7))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    xs = list(range(len(runs)))
    unit = units.latency_unit_s(b.p50_s for r in runs for b in r.benchmarks if b.ok)
    series: dict[str, list[float | None]] = {}
    for i, r in enumerate(runs):
        ok = [b for b in r.benchmarks if b.ok and b.p50_s is not None]
        for b, name in zip(ok, _labels(ok), strict=True):  # labels unique within the run: no point overwrites another
            series.setdefault(_t(f"{b.device} · {name}"), [None] * len(runs))[i] = (b.p50_s or 0.0) * units.scale(unit)
    for name, ys in sorted(series.items()):
        pts = [(x, y) for x, y in zip(xs, ys, strict=False) if y is not None]
        ax1.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    ax1.set_ylabel(f"p50 latency ({unit})")
    ax1.set_title(_t(f"last {len(runs)} runs of {runs[-1].pipeline}"), loc="left")
    if series:
        ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    acc: dict[str, list[float | None]] = {}
    for i, r in enumerate(runs):
        for k, v in r.validations.items():
            if v.accuracy is not None:
                acc.setdefault(k, [None] * len(runs))[i] = v.accuracy * 100
    for name, ys in sorted(acc.items()):
        pts = [(x, y) for x, y in zip(xs, ys, strict=False) if y is not None]
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], marker="s", label=_t(name))
    ax2.set_ylabel("test accuracy (%)")
    if acc:
        ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    ax2.set_xticks(xs)
    ax2.set_xticklabels([_t((r.started or r.run_id)[:16].replace("T", "\n")) for r in runs], fontsize=7)
    fig.tight_layout()
    return _png(fig)
