"""Benchmark sessions: the one loop that runs K `bench` calls per model and thread count on a board (each a fresh
agent process and interpreter), and their merge into one result.

Why sessions: a board drifts between sessions (heat, clock, other load) more than within one, so one long
session hides the drift that decides whether a difference is real. The overall p50 is the median of the
session medians; p90/p99 are pooled over every sample; the spread and the interval come from the session
medians: the exact order-statistic interval of their median, stored with its true level (edgeq.results.stats
median_interval; records before it hold a "95 %" bootstrap interval and say so in ci_ms.method).

Per-session work: `runs` and `min_seconds` given to a benchmark are totals over its sessions, so K = 5
sessions cost about what one session did before (plus K - 1 interpreter loads and warm-ups).

Order on a board: session 1 of every model, then session 2 of every model (A B A B ...), and within a session
every thread count, so a board's slow drift hits every model and thread count alike. `edgeq bench` measures one
model this way, the pipeline's benchmark stage every variant (and the baselines it re-measures) at once.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

from edgeq.errors import ConfigError
from edgeq.fleet import clock
from edgeq.fleet.boardstate import merged_fields, session_fields
from edgeq.fleet.transport.base import BoardError
from edgeq.records import Record
from edgeq.records.fleet import AgentBench, BenchRun, BenchSession, CiSizing, LatencyStats, MedianCI

# The nightly's default. compare decides on the fastest invoke over the sessions and its bootstrap interval
# (edgeq.results.compare): with 3 sessions one baseline session slowed all through (common on a shared or noisy
# board) puts 1/27 of the resamples on it and the interval's lower end below 1; with 5, two such sessions of
# five still leave it above (bench/drift_bench.py: a 15 % slower model flagged 16 of 20 times with 3, 20 of 20
# with 5). Each extra session costs an agent start and an interpreter load, not more timed runs.
DEFAULT_SESSIONS = 5

DEFAULT_MAX_SESSIONS = 20  # a self-sizing benchmark's session budget when --max-sessions is not given

ORDER_STATISTICS = "order statistics of session medians"  # MedianCI.method of intervals from median_interval


def per_session(runs: int, min_seconds: float, sessions: int) -> tuple[int, float]:
    """(runs, min_seconds) of one session when a benchmark of `sessions` sessions asks for these totals."""
    k = max(1, sessions)
    return max(1, math.ceil(runs / k)), min_seconds / k


# the board is gone, or a call cannot finish within command_timeout (the agent's own deadline stopped it: every
# later session asks for the same time): no point trying more thread counts or sessions of that model
GIVE_UP = ("connection_dropped", "command_timeout", "deadline")

Start = Callable[[str, int], None]  # (model, session): before the model's runs in that session; may raise BoardError
Measure = Callable[[str, int, int], BenchRun]  # (model, threads, session) -> one bench call's run, failed or not


class Sizing(Record):
    """Self-sizing (`--ci-target`): after the minimum sessions, add sessions while the interval's half-width /
    median exceeds `target` (a fraction: 0.02 for 2 %), at most `max_sessions` in all and no new session
    once `max_seconds` have passed since the first one started."""

    target: float
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_seconds: float | None = None


def parse_ci_target(text: str | float) -> float:
    """A --ci-target / benchmark.ci_target as a fraction: "2%", "2" and 2 are 0.02 (always a percentage)."""
    raw = str(text).strip().removesuffix("%").strip()
    try:
        pct = float(raw)
    except ValueError:
        raise ConfigError(f"ci_target must be a percentage such as 2% (got {text!r})") from None
    if not 0.0 < pct < 100.0:
        raise ConfigError(f"ci_target must be above 0 % and below 100 % (got {text!r})")
    return pct / 100.0


def half_width(runs: list[BenchRun]) -> float | None:
    """(high - low) / 2 / median of the order-statistic interval of the successful runs' session medians."""
    from edgeq.results.stats import median_interval

    p50 = [r.latency_ms.p50 for r in runs if r.ok and r.latency_ms is not None and r.latency_ms.p50 is not None]
    ci = median_interval(p50)
    mid = statistics.median(p50) if p50 else 0.0
    return None if ci is None or mid <= 0 else (ci[1] - ci[0]) / 2.0 / mid


def run_sessions(
    models: list[str],
    threads: list[int],
    sessions: int,
    start: Start,
    measure: Measure,
    sizing: Sizing | None = None,
    now: Callable[[], float] = time.monotonic,
) -> tuple[dict[str, list[BenchRun]], dict[str, BoardError]]:
    """The session loop of one board: session by session, model by model, thread count by thread count.

    Returns per model one merged BenchRun per thread count it ran, and why each model that never ran did not
    (its `start` failed: a deploy refused, an upload cut off). A failed run is recorded and the next thread count
    still runs; a run that gives up (GIVE_UP) ends its model's sessions. A merged run whose sessions partly failed
    keeps the first failure's kind, error and hint beside the figures of the others.

    With `sizing`, a model runs more sessions after the first `sessions` until every thread count's interval is
    within sizing.target (or the budget ends); each merged run then says how it ended (CiSizing)."""
    runs: dict[str, dict[int, list[BenchRun]]] = {m: {t: [] for t in threads} for m in models}
    failed: dict[str, BoardError] = {}
    live = list(models)
    began = now()
    limit = sessions if sizing is None else max(sessions, sizing.max_sessions)
    stop: dict[str, str] = {}
    s = 0
    while s < limit and live:
        s += 1
        if s > sessions and sizing is not None:
            out_of_time = sizing.max_seconds is not None and now() - began >= sizing.max_seconds
            for m in list(live):
                widths = [half_width(runs[m][t]) for t in threads if runs[m][t]]
                if widths and all(w is not None and w <= sizing.target for w in widths):
                    stop[m] = "target_met"
                    live.remove(m)
                elif out_of_time:
                    live.remove(m)
            if not live:
                break
        for m in list(live):
            try:
                start(m, s)
            except BoardError as e:
                failed[m] = e
                live.remove(m)
                continue
            done: list[BenchRun] = []
            for t in threads:
                done.append(measure(m, t, s))
                runs[m][t].append(done[-1])
                if done[-1].kind in GIVE_UP:
                    break
            if len(done) < len(threads) or any(r.kind in GIVE_UP for r in done):
                live.remove(m)
    merged = {m: [_merged(runs[m][t]) for t in threads if runs[m][t]] for m in models}
    if sizing is not None:
        for m, done_runs in merged.items():
            end = stop.get(m)
            if end is None:  # the last session may have brought it within the target
                widths = [half_width(runs[m][t]) for t in threads if runs[m][t]]
                met = bool(widths) and all(w is not None and w <= sizing.target for w in widths)
                end = "target_met" if met else "budget_exhausted"
            merged[m] = [_sized(r, runs[m][r.threads], sizing.target, end) for r in done_runs]
    return {m: r for m, r in merged.items() if r}, {m: e for m, e in failed.items() if not merged[m]}


def _sized(merged: BenchRun, runs: list[BenchRun], target: float, stop: str) -> BenchRun:
    w = half_width(runs)
    sizing = CiSizing(target=target, sessions_run=len(runs), stop=stop, half_width=None if w is None else round(w, 6))
    return merged.replace(ci_sizing=sizing)


def _merged(runs: list[BenchRun]) -> BenchRun:
    merged = merge_sessions(runs)
    failed = next((r for r in runs if not r.ok), None)
    if failed is None or not merged.ok:
        return merged
    return merged.replace(kind=failed.kind, error=failed.error, hint=failed.hint)


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000.0, 6)


def _floor_ms(raw: AgentBench) -> float | None:
    f = raw.harness_floor
    return None if f is None else _ms(f.p50_s)


def _session(i: int, raw: AgentBench) -> BenchSession:
    lat = raw.latency_s
    return BenchSession(
        session=i,
        p50=_ms(lat.p50) or 0.0,
        p90=_ms(lat.p90) or 0.0,
        p99=_ms(lat.p99) or 0.0,
        mean=_ms(lat.mean) or 0.0,
        count=lat.count,
        started_at=clock.host_time(raw.started_at, raw.clock_offset),  # this host's clock, not the board's
        harness_floor_ms=_floor_ms(raw),
        min=_ms(lat.min),
        **session_fields(raw),
        **({"clock_offset_s": raw.clock_offset.offset_s} if raw.clock_offset is not None else {}),
    )


def _clock_note(notes: tuple[str, ...], raws: list[AgentBench]) -> dict[str, tuple[str, ...]]:
    """`notes` plus one for a board clock off by more than clock.NOTE_S over the sessions ({} when it is not)."""
    said = clock.note([r.clock_offset for r in raws if r.clock_offset is not None])
    return {"notes": (*notes, said)} if said else {}


def rethin(raw: AgentBench, stride: int) -> list[float]:
    """A session's kept samples thinned to every `stride`-th of its timed runs (the agent kept every
    raw.samples_stride-th): pooled sessions then weigh by their run counts, as their p90/p99 must."""
    kept, own = list(raw.samples_s), max(1, raw.samples_stride)
    if stride == own or not kept:
        return kept
    n = -(-raw.latency_s.count // stride)
    return [kept[min(len(kept) - 1, j * stride // own)] for j in range(n)]


def _raw_session(i: int, raw: AgentBench, kept: int) -> dict:
    """What the merged raw document keeps of one session (its samples are in the pooled list)."""
    keep = ("pid", "started_at", "init_seconds", "first_invoke_seconds", "stopped_by", "timed_seconds", "window_seconds")
    doc = {k: getattr(raw, k) for k in keep}
    doc.update(session=i, latency_s=raw.latency_s.to_json(), samples_kept=kept, samples_stride=raw.samples_stride)
    doc.update(harness_floor=None if raw.harness_floor is None else raw.harness_floor.to_json(), board_after=raw.board_after)
    doc.update((k, getattr(raw, k).to_json()) for k in ("state", "trend", "clock_offset") if getattr(raw, k) is not None)
    if raw.trajectory:
        doc["trajectory"] = [w.to_json() for w in raw.trajectory]
    return doc


def merge_sessions(runs: list[BenchRun]) -> BenchRun:
    """One BenchRun of the successful sessions of one (board, variant, threads), in session order.

    A failed session is left out (the caller reports it) and keeps its number; no successful session gives the
    first failure."""
    from edgeq.results.stats import SessionFigures, summarize_sessions  # edgeq.results at import: ~40 ms of `devices list`

    numbered = [(i + 1, r) for i, r in enumerate(runs) if r.ok and r.raw is not None]
    good = [r for _, r in numbered]
    if not good:
        return runs[0]
    raws = [r.raw for r in good if r.raw is not None]
    sessions = tuple(_session(i, r.raw) for i, r in numbered if r.raw is not None)
    if len(good) == 1:  # one session: the agent's own exact figures stand
        note = _clock_note(good[0].notes, raws)
        return good[0].replace(sessions=sessions, harness_floor_ms=sessions[0].harness_floor_ms, **note)
    stride = max(max(1, raw.samples_stride) for raw in raws)
    per = [rethin(raw, stride) for raw in raws]
    pooled = [x for kept in per for x in kept]
    figures = [SessionFigures(p50=s.p50, p90=s.p90, p99=s.p99, mean=s.mean, count=s.count) for s in sessions]
    summary = summarize_sessions(figures, [x * 1000.0 for x in pooled])
    lat = LatencyStats(
        p50=summary.p50,
        p90=summary.p90,
        p99=summary.p99,
        mean=summary.mean,
        std=summary.std,
        min=min(_ms(raw.latency_s.min) or math.inf for raw in raws),
        max=max(_ms(raw.latency_s.max) or -math.inf for raw in raws),
    )
    floors = [s.harness_floor_ms for s in sessions if s.harness_floor_ms is not None]
    first = raws[0]
    merged_raw = first.replace(
        latency_s={**{k: (v / 1000.0 if v is not None else None) for k, v in lat.to_json().items()}, "count": summary.count},
        samples_s=tuple(pooled),
        samples_stride=stride,
        sessions=tuple(_raw_session(s.session, raw, len(k)) for s, raw, k in zip(sessions, raws, per, strict=True)),
    )
    ci = None
    if summary.ci_low is not None and summary.ci_high is not None:
        ci = MedianCI(low=summary.ci_low, high=summary.ci_high, level=summary.ci_level, method=ORDER_STATISTICS)
    peak = [r.peak_rss_bytes for r in good if r.peak_rss_bytes is not None]
    state = merged_fields(good, sessions)
    state.update(_clock_note(state.get("notes", ()), raws))
    return good[0].replace(
        latency_ms=lat,
        count=summary.count,
        peak_rss_bytes=max(peak) if peak else None,
        raw=merged_raw,
        sessions=sessions,
        spread=summary.spread,
        spread_std_ms=summary.spread_std,
        ci_ms=ci,
        harness_floor_ms=statistics.median(floors) if floors else None,
        **state,
    )
