"""Core records -> table rows: pure functions (no terminal), so every table is unit-testable.

Each function returns (title, columns, rows) or rows; edgeq.cli.output draws them. Cells are plain
strings; foreign text (board output, YAML names) is drawn as text, never as markup.

Columns are `Col`s (edgeq.cli.layout): which ones give way first when a terminal is narrow (`drop`: 0
never, higher first), which hold lists that break between items (`items`) or prose that wraps between
words (`wrap`). A cell of any other column is never broken, so a number, a unit or a run id always
reads on one line; `--wide` shows every column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edgeq.cli import format as fmt
from edgeq.cli.layout import Col

if TYPE_CHECKING:
    from edgeq.records.fleet import BenchResult, FleetSummary
    from edgeq.records.run import RunManifest, RunStages, VariantResult
    from edgeq.results import StoredRun
    from edgeq.results.compare import Comparison


Table = tuple[str, list[Col], list[list[Any]]]


# ---- edgeq run


def _notes(v: VariantResult) -> str:
    """Mixed-precision outcome, else the worst int8 layer: what to look at first when accuracy dropped."""
    from edgeq.results.quality import quality_note, quality_summary

    return quality_note(quality_summary(v), qat=False)  # QAT shows in the type column


def run_variants(m: RunManifest) -> Table:
    rows = []
    for key, v in m.variants.items():
        rows.append(
            [
                key,
                v.type + (" (QAT)" if v.qat else ""),
                fmt.pct(v.accuracy),
                fmt.pts(v.accuracy_drop),
                fmt.count(v.size_bytes),
                fmt.ratio(v.size_ratio),
                "pass" if v.gates is None or v.gates.passed else "FAIL",
                _notes(v),
            ]
        )
    rt = m.runtime
    runtime = f"{(rt and rt.name) or '?'} {(rt and rt.version) or ''}"
    title = f"run {m.run_id} · pipeline {m.pipeline} · {runtime}"
    cols = [Col("variant"), Col("type", 4), Col("accuracy"), Col("drop vs fp32", 1), Col("size (bytes)", 5)]
    cols += [Col("size / fp32", 2), Col("gates", 1), Col("notes", 3, wrap=True)]
    return title, cols, rows


def _session_cells(b: BenchResult, unit: str) -> list[str]:
    """sessions, the interval of the p50 (with its level) and the between-session spread of one manifest row."""
    return [
        str(len(b.sessions)) if b.ok else "",
        _ci(b, unit),
        "" if b.spread is None else f"{b.spread * 100:.1f}%",
    ]


def run_benchmarks(bench: Sequence[BenchResult]) -> Table | None:
    """A manifest's benchmark rows; session columns only when some result has sessions (older manifests
    draw as before)."""
    if not bench:
        return None
    unit = fmt.latency_unit(b.latency_ms.p50 if b.latency_ms else None for b in bench)
    sessions = any(b.sessions for b in bench)
    floor = any(_tiny(b) for b in bench)
    rows = []
    for b in bench:
        lat = b.latency_ms
        rt = b.runtime
        rows.append(
            [
                b.device,
                b.variant,
                b.threads,
                b.board.arch if b.board else None,
                f"{(rt and rt.name) or ''} {(rt and rt.version) or ''}".strip(),
                fmt.latency(lat.p50 if lat else None, unit),
                fmt.latency(lat.p90 if lat else None, unit),
                fmt.latency(lat.p99 if lat else None, unit),
                *(_session_cells(b, unit) if sessions else []),
                *([fmt.latency(b.harness_floor_ms, unit)] if floor else []),
                fmt.latency(b.init_ms, unit),
                fmt.mib(b.peak_rss_bytes),
                fmt.num(b.power.mean_w if b.power else None, ".2f"),
                "ok" if b.ok else f"FAILED: {b.error}",
            ]
        )
    cols = [Col("device"), Col("variant"), Col("threads", 1, short="thr"), Col("arch", 6), Col("runtime", 7), Col("p50")]
    cols += [Col("p90", 3), Col("p99", 2)]
    cols += [Col("sessions", 8, short="sess"), Col("p50 interval", 4), Col("spread", 4)] if sessions else []
    cols += [Col("floor", 5)] if floor else []
    cols += [Col("init", 6), Col("peak MiB", 3), Col("W", 5), Col("status", wrap=True)]
    note = "; p50: median of session medians" if sessions else ""
    return f"on-device benchmark (latency in {unit}{note})", cols, rows


def cached_stages(stages: RunStages) -> list[str]:
    cached = ["train"] if stages.train is not None and stages.train.cached else []
    for name, per in (("quantize", stages.quantize), ("validate", stages.validate_)):
        if per and all(v.cached for v in per.values()):
            cached.append(name)
    return cached


def runs_table(runs: Sequence[tuple[str, str, str, int, str]]) -> Table:
    """Several pipelines in one `edgeq run`: (pipeline file, run id, status, exit code, error) each."""
    cols = [Col("Pipeline", wrap=True), Col("Run"), Col("Status"), Col("Exit", 1), Col("Error", 2, wrap=True)]
    return f"{len(runs)} pipelines", cols, [list(r) for r in runs]


# ---- fleet


def devices_table(devices: Sequence[Any], source: str) -> Table:
    cols = [Col("Name"), Col("Transport", 3), Col("Address", wrap=True), Col("User", 4), Col("Tags", 2, items=True)]
    cols += [Col("Python", 5), Col("Workdir", 6), Col("Model", 1, wrap=True)]
    return f"devices ({source})", cols, devices_rows(devices)


def devices_rows(devices: Sequence[Any]) -> list[list[str]]:
    return [
        [
            d.name,
            d.transport,
            f"{d.address} {d.route}".strip() if getattr(d, "route", "") else d.address,
            d.user if d.transport == "ssh" else "",
            ", ".join(d.tags),
            d.python,
            d.workdir,
            d.model or d.description,
        ]
        for d in devices
    ]


def check_table(res: FleetSummary) -> Table:
    from edgeq.records.fleet import BoardHealth

    rows: list[list[Any]] = []
    for r in res.devices:
        h = r if isinstance(r, BoardHealth) else None  # check gives BoardHealth for every board
        rt = f"{(h and h.runtime) or ''} {(h and h.runtime_version) or ''}".strip()
        temp = h.temperature_c if h else None
        rows.append(
            [
                f"{r.device} ({h.route})" if h and h.route else r.device,
                "yes" if h and h.reachable else "no",
                "yes" if h and h.healthy else "NO",
                h.arch if h else None,
                h.python if h else None,
                rt,
                fmt.size(h.free_bytes if h else None),
                f"{temp:.0f} C" if temp is not None else "",
                "; ".join(
                    [*((h.problems if h else ()) or ([r.error] if r.error else []))]
                    + [f"note: {w}" for w in (h.warnings if h else ())]
                ),
            ]
        )
    # a board behind jump hosts reads "pi5 (via bastion)": the route may go to a line of its own
    cols = [Col("Device", wrap=True), Col("Reachable", 1, short="Up"), Col("Healthy"), Col("Arch", 3), Col("Python", 5)]
    cols += [Col("Runtime", 2), Col("Free disk", 4), Col("Temp", 3), Col("Problem", wrap=True)]
    return "device check", cols, rows


def rollout_table(res: FleetSummary, title: str) -> Table:
    rows = [
        [r.device, r.status, r.action or "", fmt.size(r.bytes_uploaded), fmt.seconds(r.seconds), r.error or ""]
        for r in res.devices
    ]
    cols = [Col("Device"), Col("Status"), Col("Action", 1, wrap=True), Col("Uploaded", 2), Col("Time", 3)]
    return title, [*cols, Col("Error", wrap=True)], rows


def rollout_line(res: FleetSummary) -> str:
    counts = ", ".join(f"{v} {k}" for k, v in (res.counts.to_json() if res.counts else {}).items() if v)
    return f"{counts}; {fmt.size(res.bytes_uploaded)} uploaded in {res.seconds:.1f}s"


FLOOR_SHOWN_BELOW = 10.0  # the harness floor column appears when a p50 is within 10x of its board's floor


def _ci(b: Any, unit: str) -> str:
    """The p50's interval and its level: "1.20-1.31 (93.8 %)" (an exact order-statistic interval; rows stored
    before it show their bootstrap's stated 95.0 %)."""
    if b.ci_ms is None:
        return ""
    return f"{fmt.latency(b.ci_ms.low, unit)}-{fmt.latency(b.ci_ms.high, unit)} ({b.ci_ms.level * 100:.1f} %)"


def _tiny(b: Any) -> bool:
    p50 = b.latency_ms.p50 if b.latency_ms else None
    return p50 is not None and b.harness_floor_ms is not None and p50 <= FLOOR_SHOWN_BELOW * b.harness_floor_ms


def bench_table(res: FleetSummary) -> Table:
    """p50 is the median of session medians, Interval its exact order-statistic interval at the level shown
    (edgeq.results.stats.median_interval), spread (max-min)/median of them."""
    from edgeq.records.fleet import LatencyStats

    unit = fmt.latency_unit(b.latency_ms.p50 if b.latency_ms else None for r in res.devices for b in r.results)
    floor = any(_tiny(b) for r in res.devices for b in r.results)
    path = any(len(b.trajectory_ms) > 1 for r in res.devices for b in r.results)  # sustained (or long) runs
    rows: list[list[Any]] = []
    for r in res.devices:
        if not r.results:
            rows.append(
                [
                    r.device,
                    *[""] * 9,
                    *([""] if floor else []),
                    "",
                    *([""] if path else []),
                    "",
                    r.status + ": " + (r.error or ""),
                ]
            )
        for b in r.results:
            lat = b.latency_ms or LatencyStats()
            rows.append(
                [
                    r.device,
                    b.threads,
                    fmt.latency(lat.p50, unit),
                    fmt.latency(lat.p90, unit),
                    fmt.latency(lat.p99, unit),
                    fmt.latency(lat.mean, unit),
                    b.count or "",
                    len(b.sessions) or "",
                    _ci(b, unit),
                    "" if b.spread is None else f"{b.spread * 100:.1f}%",
                    *([fmt.latency(b.harness_floor_ms, unit)] if floor else []),
                    "" if b.trend is None else f"{b.trend:.3f}",
                    *([_first_last(b, unit)] if path else []),
                    ", ".join(b.flags) or ("-" if "flags" in b.model_fields_set else ""),
                    "ok" if b.ok else b.error,
                ]
            )
    cols = [Col("Device"), Col("Threads", 1, short="Thr"), Col(f"p50 {unit}"), Col(f"p90 {unit}", 4), Col(f"p99 {unit}", 3)]
    cols += [
        Col(f"mean {unit}", 7),
        Col("Runs", 8),
        Col("Sessions", 8, short="Sess"),
        Col(f"Interval {unit}", 5),
        Col("Spread", 4),
    ]
    cols += [Col(f"Floor {unit}", 6)] if floor else []
    cols += [Col("Trend", 6), *([Col(f"Window first/last {unit}", 7)] if path else []), Col("Flags", 2, items=True)]
    cols += [Col("Status", wrap=True)]
    return f"bench {res.name} ({(res.sha256 or '')[:12]})", cols, rows


def _first_last(b: Any, unit: str) -> str:
    t = b.trajectory_ms
    return "" if len(t) < 2 else f"{fmt.latency(t[0].p50, unit)} / {fmt.latency(t[-1].p50, unit)}"


def bench_notes(res: FleetSummary) -> list[str]:
    """Per board, what the agent could not do as asked (a governor left alone, ...): printed as warnings; and a
    self-sizing benchmark that ran out of budget before its interval was narrow enough (--ci-target)."""
    notes = [f"{r.device}: {n}" for r in res.devices for n in dict.fromkeys(n for b in r.results for n in b.notes)]
    for r in res.devices:
        for b in r.results:
            z = b.ci_sizing
            if z is not None and z.stop == "budget_exhausted":
                reached = "no interval" if z.half_width is None else f"half-width {z.half_width * 100:.1f} %"
                notes.append(
                    f"{r.device} t{b.threads}: budget_exhausted after {z.sessions_run} sessions, {reached} "
                    f"(target {z.target * 100:g} %)"
                )
    return notes


# ---- results


def history_table(runs: list[StoredRun], db: str) -> Table:
    unit = fmt.latency_unit(b.p50_s * 1e3 for r in runs for b in r.benchmarks if b.ok and b.p50_s is not None)
    rows = []
    for r in runs:
        acc = ", ".join(f"{v} {fmt.pct(x.accuracy)}" for v, x in r.validations.items())
        bench = "; ".join(
            f"{b.device}/{b.variant}/t{b.threads} "
            + (fmt.latency(None if b.p50_s is None else b.p50_s * 1e3, unit) if b.ok else "FAILED")
            for b in r.benchmarks
        )
        rows.append(
            [
                r.run_id,
                r.pipeline,
                r.status + (" (ad hoc)" if r.adhoc else ""),
                (r.started or "")[:19].replace("T", " "),
                "" if r.wall_seconds is None else f"{r.wall_seconds:.1f}",
                acc,
                bench,
            ]
        )
    # what `history` is for: a run id to copy, its outcome, its latency; then what else fits
    cols = [Col("run"), Col("pipeline", 2), Col("status", 1), Col("started (UTC)", 4), Col("wall s", 5)]
    cols += [Col("accuracy", 3, items=True), Col(f"p50 {unit} (device / variant / threads)", 1, items=True)]
    if any(r.numeric for r in runs):  # benchmark.numeric_check: the first diverging layer, or "matches"
        cols.append(Col("numeric check (device/variant)", 3, items=True))
        for row, r in zip(rows, runs, strict=True):
            row.append("; ".join(f"{n.device}/{n.variant} {n.summary}" for n in r.numeric or ()))
    return f"history {db}", cols, rows


def _ms(s: float | None) -> float | None:
    return None if s is None else s * 1e3


def _text(x: int | None) -> str:
    return "" if x is None else str(x)


def _ratio_ci(x: Any) -> str:
    """The session interval of the ratio, or why the raw-sample test decided instead."""
    if x.test == "session floors" and x.floor_ci_low is not None and x.floor_ci_high is not None:
        return f"{x.floor_ci_low:.3f}-{x.floor_ci_high:.3f} ({x.sessions_base}v{x.sessions_candidate})"
    if x.test in ("sessions", "paired sessions") and x.ratio_ci_low is not None and x.ratio_ci_high is not None:
        pairs = " paired" if x.test == "paired sessions" else ""
        return f"{x.ratio_ci_low:.3f}-{x.ratio_ci_high:.3f} ({x.sessions_base}v{x.sessions_candidate}{pairs})"
    if x.test == "raw samples":
        return f"one session ({x.sessions_base}v{x.sessions_candidate}): p decides"
    return "no sessions stored: p decides"


def comparison_tables(c: Comparison) -> list[Table]:
    b, k = c.base, c.candidate
    out: list[Table] = []
    unit = fmt.latency_unit(_ms(x.base_p50_s) for x in c.latency)
    rows = [
        [
            x.device,
            x.variant,
            _text(x.threads),
            fmt.latency(_ms(x.base_p50_s), unit) + ("*" if x.base_source == "rerun" else ""),
            fmt.latency(_ms(x.candidate_p50_s), unit),
            fmt.ratio(x.ratio),
            fmt.ratio(x.floor_ratio),
            _ratio_ci(x),
            "" if x.p_value is None else f"{x.p_value:.2g}",
            x.verdict.upper() if x.regression else x.verdict,
        ]
        for x in c.latency
    ]
    if rows:
        title = (
            f"latency {b.run_id} -> {k.run_id} (pipeline {k.pipeline}; regression = floor ratio (fastest invoke over "
            f"all sessions, candidate / base) > {c.threshold:g} and its 95% session interval excludes 1; results stored "
            "without session minima: the p50 ratio and its interval; p: Mann-Whitney on raw samples, the test "
            f"(p < {c.alpha:g}) only where a side has one session)"
        )
        if any(x.base_source == "rerun" for x in c.latency):
            title += f"; * base re-measured in run {k.run_id}, interleaved with the candidate: sessions compared in pairs"
        cols = [Col("device"), Col("variant"), Col("threads", 1, short="thr"), Col(f"base p50 {unit}"), Col(f"cand p50 {unit}")]
        cols += [Col("ratio", 3), Col("floor ratio", 1), Col("ratio CI (sessions)", 2, wrap=True), Col("p", 4)]
        out.append((title, [*cols, Col("verdict")], rows))
    if c.drift:
        drift = [
            [x.device, x.variant, _text(x.threads), fmt.latency(_ms(x.base_p50_s), unit)]
            + [fmt.latency(_ms(x.candidate_p50_s), unit), fmt.ratio(x.ratio), fmt.ratio(x.floor_ratio), _ratio_ci(x)]
            + [x.verdict]
            for x in c.drift
        ]
        cols = [Col("device"), Col("variant"), Col("threads", 1, short="thr"), Col(f"then p50 {unit}"), Col(f"rerun p50 {unit}")]
        cols += [Col("ratio", 3), Col("floor ratio", 1), Col("ratio CI", 2, wrap=True), Col("verdict")]
        title = f"board/runtime drift: the base run's artifact as measured then (run {b.run_id}) and re-measured now"
        out.append((title, cols, drift))
    if c.accuracy:
        acc = [
            [a.variant, fmt.pct(a.base), fmt.pct(a.candidate), f"{a.delta * 100:+.2f}", "REGRESSION" if a.regression else "ok"]
            for a in c.accuracy
        ]
        out.append(
            ("accuracy", [Col("variant"), Col("base"), Col("candidate", short="cand"), Col("delta (pts)"), Col("verdict")], acc)
        )
    cols = [
        Col("device"),
        Col("variant"),
        Col("threads", 1, short="thr"),
        Col("base"),
        Col("candidate", short="cand"),
        Col("ratio", 2),
        Col("verdict"),
    ]
    memory = [
        [m.device, m.variant, _text(m.threads), fmt.mib(m.base_bytes), fmt.mib(m.candidate_bytes), fmt.ratio(m.ratio)]
        + ["REGRESSION" if m.regression else "ok"]
        for m in c.memory
    ]
    if memory:
        out.append(("peak memory (MiB)", cols, memory))
    energy = [
        [e.device, e.variant, _text(e.threads), f"{e.base_j * 1e3:.4g}", f"{e.candidate_j * 1e3:.4g}", fmt.ratio(e.ratio)]
        + ["REGRESSION" if e.regression else "ok"]
        for e in c.energy
    ]
    if energy:
        out.append(("energy per inference (mJ)", cols, energy))
    return out


def comparison_notes(c: Comparison) -> list[str]:
    notes = [f"only in base: {x.variant} on {x.device} ({x.threads} threads)" for x in c.only_in_base]
    notes += [f"only in candidate: {x.variant} on {x.device} ({x.threads} threads)" for x in c.only_in_candidate]
    if not c.same_pipeline_file:
        notes.append("note: the pipeline file changed between the two runs")
    notes += list(c.state_notes or ())
    if c.regressions:
        notes.append(f"{len(c.regressions)} regression(s):")
        notes += [f"  {r}" for r in c.regressions]
    else:
        notes.append("no regression")
    return notes
