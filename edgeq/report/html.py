"""One self-contained HTML report for a run: tables, and plots as inline PNG (no external URL, readable offline).

Plots: latency distribution per device and variant (from the raw samples), accuracy vs size per variant, and
the trend of the pipeline's last N runs. matplotlib is imported here only, with the Agg backend.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from edgeq import paths, units
from edgeq.errors import EdgeqError, StoreError
from edgeq.records import Record
from edgeq.records.ops import OpProfile
from edgeq.report.htmlkit import _e, _table
from edgeq.report.plots import accuracy_size_plot, latency_plot, trend_plot
from edgeq.results.compare import Comparison
from edgeq.results.headline import Headline, headline
from edgeq.results.quality import quality_note
from edgeq.results.rows import BenchmarkRow, StoredRun, as_given

BOARD_KEYS = (
    "hostname",
    "arch",
    "board_model",
    "cpu_model",
    "cores",
    "kernel",
    "os",
    "python",
    "numpy",
    "temp_c",
    "cpu_freq_khz",
    "cpu_governor",
    "throttled",
)


class ReportSummary(Record):
    """What `edgeq report --json` prints."""

    ok: Literal[True] = True
    path: str
    run_id: str
    bytes: int
    trend_runs: int


def _f(x: float | None, fmt: str, scale: float = 1.0) -> str:
    return "" if x is None else format(x * scale, fmt)


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1b1f24;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left}
th{background:#f0f3f6}tr:nth-child(even) td{background:#f8fafc}.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}
.meta{color:#57606a;font-size:13px}img{max-width:100%;border:1px solid #d0d7de;margin:6px 0}
#headline{border:2px solid #d0d7de;border-radius:6px;padding:8px 14px;margin:10px 0}
#headline .answer{font-size:20px;font-weight:600;margin:4px 0}
#headline.ship{background:#dafbe1;border-color:#1a7f37}#headline.hold{background:#ffebe9;border-color:#cf222e}"""


def _head(run: StoredRun) -> list[str]:
    status_cls = "ok" if run.status == "ok" else "bad"
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>edgeq report {_e(run.run_id)}</title>"
        f"<style>{CSS}</style></head><body>",
        f"<h1>edgeq · {_e(run.pipeline)} · run {_e(run.run_id)}</h1>",
        f"<p class='meta'>status <span class='{status_cls}'>{_e(run.status)}</span> · started {_e(run.started)} · "
        f"wall {_f(run.wall_seconds, '.1f')} s · pipeline file {_e(run.pipeline_file)} "
        f"(sha256 {_e((run.pipeline_sha256 or '')[:12])}) · runtime {_e(run.runtime.name)} "
        f"{_e(run.runtime.version)}</p>",
        "<p class='meta'>" + " · ".join(f"{_e(k)} {_e(v)}" for k, v in (run.versions or {}).items()) + "</p>",
    ]
    if run.error:
        parts.append(f"<p class='bad'>error: {_e(run.error)}</p>")
    for f in (run.gates_failed or ()) + (run.fleet_failed or ()):
        parts.append(f"<p class='bad'>{_e(f)}</p>")
    return parts


def _variants(run: StoredRun) -> str:
    cols = ["variant", "type", "accuracy", "drop vs fp32 (pts)", "size (bytes)", "size / fp32", "gates", "quantization notes"]
    rows = [
        [
            k,
            v.type,
            _f(v.accuracy, ".2%"),
            _f(v.accuracy_drop, "+.2f", 100),
            v.size_bytes,
            _f(v.size_ratio, ".3f"),
            "" if v.gates_passed is None else ("pass" if v.gates_passed else "FAIL"),
            quality_note(v.quality),
        ]
        for k, v in run.validations.items()
    ]
    return "<h2>Variants</h2>" + _table(cols, rows)


def bench_columns(unit: str) -> list[str]:
    """The latency columns in the run's unit (edgeq.units: one rule for every table)."""
    return [*BENCH_COLUMNS[:6], f"p50 {unit}", f"p90 {unit}", f"p99 {unit}", f"init {unit}", *BENCH_COLUMNS[6:]]


BENCH_COLUMNS = [
    "device",
    "variant",
    "threads",
    "arch",
    "board",
    "runtime",
    "peak MiB",
    "W",
    "mJ / inference",
    "trend",
    "board state",
    "inferences timed",
    "status",
]


def _bench_cells(b: BenchmarkRow, unit: str) -> list[Any]:
    return [
        b.device,
        b.variant,
        b.threads,
        b.arch,
        b.board_model or b.cpu_model,
        f"{b.runtime_name or ''} {b.runtime_version or ''}".strip(),
        units.latency_s(b.p50_s, unit),
        units.latency_s(b.p90_s, unit),
        units.latency_s(b.p99_s, unit),
        units.latency_s(b.init_s, unit),
        _f(b.peak_rss_bytes, ".1f", 1 / 2**20),
        _f(b.power_mean_w, ".2f"),
        _f(b.energy_j, ".4g", 1e3),
        _f(b.trend, ".3f"),
        _state_cell(b),
        b.count or len(b.samples_s or ()),
        "ok" if b.ok else f"FAILED: {b.error}",
    ]


def _state_cell(b: BenchmarkRow) -> str:
    """⚠ and the flags of a benchmark whose sessions ran on a throttled, slowed, busy or hot board; "" if not recorded."""
    if b.flags is None:
        return ""
    temp = "" if b.state_temp_max_c is None else f" ({b.state_temp_max_c:.0f} °C)"
    return ("⚠ " + ", ".join(b.flags) if b.flags else "ok") + temp


def _board_cell(v: Any) -> Any:
    return as_given(v) if isinstance(v, Record) else v  # a nested fact shows as the board reported it


def _benchmarks(run: StoredRun) -> list[str]:
    unit = units.latency_unit_s(b.p50_s for b in run.benchmarks if b.ok)
    table = _table(bench_columns(unit), [_bench_cells(b, unit) for b in run.benchmarks])
    parts = ["<h2>On-device benchmark</h2>" + table]
    img = latency_plot(run)
    parts.append(f"<img alt='latency distribution' src='{img}'>" if img else "<p class='meta'>no raw samples stored</p>")
    boards: dict[str, Any] = {}
    for b in run.benchmarks:
        boards.setdefault(b.device, b.board)
    rows = [[d, *[_board_cell(getattr(facts, k)) for k in BOARD_KEYS]] for d, facts in boards.items()]
    parts.append("<h2>Boards</h2>" + _table(["device", *BOARD_KEYS], rows))
    if run.numeric:  # benchmark.numeric_check
        cols = ["device", "variant", "result", "worst op", "tolerance", "runtime on the board"]
        rows = [
            [
                n.device,
                n.variant,
                n.summary,
                "" if n.worst_error is None else f"#{n.worst_op_index}: {n.worst_error:.3g} {n.worst_unit}",
                f"{n.tolerance_lsb:g} steps / {n.tolerance_rel:g} relative" if n.tolerance_lsb is not None else "",
                " ".join(x for x in (n.runtime_name, n.runtime_version) if x),
            ]
            for n in run.numeric
        ]
        parts.append("<h2>Numeric check on the boards (golden rows vs this host, op by op)</h2>" + _table(cols, rows))
    return parts


def _comparison(c: Comparison) -> list[str]:
    unit = units.latency_unit_s(x.base_p50_s for x in c.latency)
    latency = _table(
        ["device", "variant", "threads", f"base p50 {unit}", f"p50 {unit}", "ratio", "floor ratio", "floor 95% interval"]
        + ["Mann-Whitney p", "verdict"],
        [
            [
                x.device,
                x.variant,
                x.threads,
                units.latency_s(x.base_p50_s, unit),
                units.latency_s(x.candidate_p50_s, unit),
                _f(x.ratio, ".3f"),
                _f(x.floor_ratio, ".3f"),
                "" if x.floor_ci_low is None else f"{x.floor_ci_low:.3f}-{x.floor_ci_high:.3f}",
                _f(x.p_value, ".2g"),
                x.verdict,
            ]
            for x in c.latency
        ],
    )
    accuracy = _table(
        ["variant", "base accuracy", "accuracy", "delta (pts)", "regression"],
        [
            [a.variant, _f(a.base, ".2%"), _f(a.candidate, ".2%"), _f(a.delta, "+.2f", 100), "yes" if a.regression else "no"]
            for a in c.accuracy
        ],
    )
    verdict = (
        ("<p class='bad'>" + "<br>".join(_e(r) for r in c.regressions) + "</p>")
        if c.regressions
        else "<p class='ok'>no regression</p>"
    )
    flagged = "".join(f"<p class='meta'>⚠ {_e(n)}</p>" for n in c.state_notes or ())
    from edgeq.report.opshtml import kernel_changes

    kernels = kernel_changes(c)
    return [f"<h2>Compared with the previous run {_e(c.base.run_id)}</h2>", latency, accuracy, verdict + flagged + kernels]


def _headline(h: Headline | None) -> str:
    """The answer first: ship the quantized variant on these boards? (edgeq.results.headline)"""
    if h is None:
        return ""
    size = f"{h.size_ratio:.2f}x the fp32 size" if h.size_ratio is not None else "size not measured"
    drop = f"accuracy {-100 * h.accuracy_drop:+.2f} pts vs fp32" if h.accuracy_drop is not None else "accuracy not measured"
    ship, hold = [b for b in h.boards if b.ship], [b for b in h.boards if not b.ship]
    if not h.boards:
        answer = f"{_e(h.variant)}: not benchmarked on a board in this run"
        cls = "meta"
    elif ship:
        answer = f"Ship {_e(h.variant)} on {_e(', '.join(b.device for b in ship))}"
        answer += f"; hold on {_e(', '.join(b.device for b in hold))}" if hold else ""
        cls = "ship"
    else:
        answer = f"Hold {_e(h.variant)} on every board"
        cls = "hold"
    items = "".join(
        f"<li><b>{_e(b.device)}</b> ({b.threads} thread{'s' if b.threads != 1 else ''}): {_e(b.reason)}</li>" for b in h.boards
    )
    return (
        f"<section id='headline' class='{cls}'><p class='answer'>{answer}</p>"
        f"<p>{_e(size)} · {_e(drop)} (budget {100 * h.budget:.2f} pts)</p><ul>{items}</ul></section>"
    )


def render_html(
    run: StoredRun, trend: list[StoredRun], comparison: Comparison | None, profiles: list[OpProfile] | None = None
) -> str:
    """The report's HTML. Every piece of foreign text (names, board facts, errors) is escaped. `profiles`: the run's
    per-op profiles (history schema 8), shown after the benchmarks."""
    parts = _head(run)
    top = _headline(headline(run))
    if top:
        parts.append(top)
    parts.append(_variants(run))
    img = accuracy_size_plot(run)
    if img:
        parts.append(f"<img alt='accuracy vs size' src='{img}'>")
    if run.benchmarks:
        parts += _benchmarks(run)
    if profiles:
        from edgeq.report.opshtml import layer_cost_section, ops_section

        parts += ops_section(profiles, {k: v.type for k, v in run.validations.items()})
        parts += layer_cost_section(run, profiles)
    if comparison:
        parts += _comparison(comparison)
    img = trend_plot(trend)
    if img:
        parts.append(f"<h2>Trend</h2><img alt='trend of the last runs' src='{img}'>")
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    parts.append(f"<p class='meta'>written by edgeq at {_e(now)}</p></body></html>")
    return "\n".join(parts)


def render_stored(h: Any, run: StoredRun, last: int = 10) -> tuple[str, int]:
    """The report of a loaded run (its pipeline's last runs as the trend, compared with the previous run) and the
    number of runs in the trend."""
    from edgeq.results import query
    from edgeq.results.compare import compare, with_kernel_changes
    from edgeq.results.opstore import load_profiles

    trend = query.trend(h, run.pipeline, run.started_ts, last)
    prev = query.previous(h, run)
    comparison = None
    if prev is not None:
        try:
            comparison = with_kernel_changes(h, compare(query.load(h, prev, samples=True), run))
        except EdgeqError:
            comparison = None  # nothing in common with the previous run: the report simply has no comparison
    return render_html(run, trend, comparison, load_profiles(h, run.run_id)), len(trend)


def write_report(
    run_ref: str, output: Path | None = None, *, last: int = 10, db_path: Path | None = None, pipeline: str | None = None
) -> ReportSummary:
    from edgeq.results import query

    with query.open_for_reading(db_path) as h:
        run = query.load(h, query.resolve(h, run_ref, pipeline), samples=True)
        doc, trend_runs = render_stored(h, run, last)
    out = Path(output) if output else Path(f"edgeq-report-{run.run_id}.html")
    try:
        paths.atomic_write_bytes(out, doc.encode())
    except OSError as e:
        raise StoreError(f"cannot write the report {out}: {e}", "pick a writable path with -o FILE.html") from None
    return ReportSummary(path=str(out.resolve()), run_id=run.run_id, bytes=len(doc), trend_runs=trend_runs)
