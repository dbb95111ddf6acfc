"""Per-op tables (`edgeq bench --ops`, `edgeq compare --ops`): records -> (title, columns, rows), pure.

At 80 columns: the top TOP ops by time and a coverage line per profile; --wide: every op and every column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeq.cli.layout import Col
from edgeq.cli.tables import Table

if TYPE_CHECKING:
    from edgeq.records.ops import OpProfile, OpsComparison, OpsDiff, OpsReport

TOP = 10


def _us(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} µs" if x >= 10 else f"{x:.1f} µs"


def _ci(lo: float | None, hi: float | None) -> str:
    return "-" if lo is None or hi is None else f"{lo:.0f}-{hi:.0f}"


def _where(p: OpProfile) -> str:
    return f"{p.variant} on {p.device} ({p.threads} thread{'s' if p.threads != 1 else ''})"


def profile_table(p: OpProfile, wide: bool) -> Table:
    """The ops of one profile by time, slowest first (TOP of them unless wide)."""
    from edgeq.results.ops import top_ops

    inv = p.invoke.p50_us if p.invoke else None
    ops = top_ops(p, None if wide else TOP)
    rows = [
        [
            o.node,
            o.op,
            _us(o.p50_us),
            "-" if not inv else f"{100.0 * o.p50_us / inv:.1f}%",
            _ci(o.ci_low_us, o.ci_high_us),
            o.kernel,
            f"{o.maps_to.index} {o.maps_to.op}" if o.maps_to else "-",
            o.mapping,
        ]
        for o in ops
    ]
    shown = "" if wide or len(p.ops) <= TOP else f", top {TOP} of {len(p.ops)} (--wide: all)"
    cols = [
        Col("Node"),
        Col("Op"),
        Col("p50"),
        Col("Share"),
        Col("Interval", 3, short="CI"),
        Col("Kernel", 1, wrap=True),
        Col("Model op", 2, wrap=True),
        Col("Mapping", 4, short="Map"),
    ]
    return f"ops: {_where(p)}, {p.sessions} session(s){shown}", cols, rows


def coverage_line(p: OpProfile) -> str:
    """Invoke, coverage, overhead and the two runtimes' p50s of one profile, or why it has none."""
    if p.kind == "unsupported":
        return f"ops: {_where(p)}: unsupported: {p.reason} - fix: {p.fix}"
    if p.kind == "failed":
        return f"ops: {_where(p)}: profiling failed: {p.error}" + (f" - hint: {p.hint}" if p.hint else "")
    cov = "-" if p.coverage is None else f"{100.0 * p.coverage:.0f}%"
    unp = p.unprofiled.p50_us if p.unprofiled else None
    line = (
        f"ops: {_where(p)}: coverage {cov} of Invoke p50 {_us(p.invoke.p50_us if p.invoke else None)}; "
        f"overhead {_us(p.overhead_us)}; CompiledModel unprofiled p50 {_us(unp)}, "
        f"Interpreter p50 {_us(p.interpreter_p50_us)}; kernels {p.fingerprint}"
    )
    if p.failed_sessions:
        line += f"; {p.failed_sessions} session(s) failed: {p.error}"
    return line


def report_tables(r: OpsReport, wide: bool) -> list[tuple[Table | None, str]]:
    """(table or None, coverage line) per profile."""
    return [(profile_table(p, wide) if p.kind == "ok" and p.ops else None, coverage_line(p)) for p in r.profiles]


def _x(r: float | None) -> str:
    return "-" if r is None else f"{r:.3f}"


def diff_table(d: OpsDiff, wide: bool) -> Table:
    """The matched ops of one device x variant x threads: flagged first, then by how much time they added."""
    ranked = sorted(d.ops, key=lambda o: (not o.flagged, -(o.cand_us - o.base_us)))
    shown = ranked if wide else ranked[:TOP]
    rows = [
        [
            o.node,
            o.op + (f" ({o.model_op})" if o.model_op else ""),
            _us(o.base_us),
            _us(o.cand_us),
            _x(o.ratio),
            "-" if o.ci_low is None or o.ci_high is None else f"{o.ci_low:.2f}-{o.ci_high:.2f}",
            ("flagged" if o.flagged else "") + (f" {100.0 * o.share:.0f}% of slowdown" if o.share is not None else ""),
        ]
        for o in shown
    ]
    more = "" if len(shown) == len(ranked) else f", {len(shown)} of {len(ranked)} ops (--wide: all)"
    title = (
        f"ops: {d.variant} on {d.device} ({d.threads} thr): Invoke {_us(d.base_invoke_us)} -> {_us(d.cand_invoke_us)}"
        f" (x{_x(d.invoke_ratio)}){more}"
    )
    cols = [
        Col("Node"),
        Col("Op"),
        Col("Base"),
        Col("Cand."),
        Col("Ratio"),
        Col("Interval", 2, short="CI"),
        Col("Verdict", wrap=True),
    ]
    return title, cols, rows


def diff_notes(c: OpsComparison) -> list[str]:
    """What the tables cannot say: kernel changes (always), unmatched ops and profiles."""
    out: list[str] = []
    for d in c.diffs:
        where = f"{d.variant} on {d.device} ({d.threads} thr)"
        for k in d.kernel_changes:
            out.append(f"kernel change: {where}: {k.node} {k.op}: {k.base_kernel} -> {k.cand_kernel}")
        if d.only_base or d.only_cand:
            out.append(
                f"ops not matched (node id + op type): {where}: base only: {', '.join(d.only_base) or '-'}; "
                f"candidate only: {', '.join(d.only_cand) or '-'}"
            )
        if d.flagged:
            out.append(f"flagged: {where}: {', '.join(d.flagged)}")
    for u in c.unmatched:
        out.append(f"profiled in one run only: {u}")
    return out
