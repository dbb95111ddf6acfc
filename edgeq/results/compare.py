"""Compare two runs: latency per device x variant x threads, accuracy per variant, peak memory and energy
per inference. Pure logic over loaded runs, plus a resolver.

Latency, sessions stored with their fastest invoke (history schema 7, test "session floors"): a regression
needs the FLOOR ratio (the candidate's fastest invoke over all its sessions / the baseline's) over the
threshold AND its session-level test: the bootstrap interval of that ratio, sessions resampled on each side,
excludes 1 (stats.floor_ratio_ci says why the floor: disturbances only add time, and whole sessions of a
shared or noisy board land 20 % slow at their median; bench/drift_bench.py measured the verdicts). The p50
ratio (median of session medians) and its interval stay beside it, as what a user of the board sees: a p50
over the threshold with an unchanged floor is "noise" with a note, not a regression.
Sessions stored before schema 7 (no minima): the p50 ratio over the threshold AND the bootstrap interval of
that ratio, from each side's session medians, excludes 1; against a rerun baseline (re-measured in the
candidate's run, session s of each side back to back) the interval comes from the session PAIRS
(stats.paired_ratio_ci). Mann-Whitney U on the raw samples stays as a side column: with 100,000 samples any
shift is "significant" and session-to-session drift is invisible to it. Results of one session fall back to
it: ratio over the threshold AND Mann-Whitney p < alpha."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeq import units
from edgeq.errors import NothingToCompare, StoreError
from edgeq.records import Record
from edgeq.results import query
from edgeq.results.baseline import BASELINE_SUFFIX
from edgeq.results.rows import BenchmarkRow, StoredRun
from edgeq.results.staterows import flagged_notes
from edgeq.results.stats import CI_LEVEL, floor_ratio_ci, mann_whitney_u, paired_ratio_ci, ratio_ci

DEFAULT_THRESHOLD = 1.10  # 10% slower p50: below this, nightly noise on a shared board dominates
DEFAULT_ALPHA = 0.05
DEFAULT_ACCURACY_TOLERANCE = 0.005  # half a point: one image of a ~360-image test split is 0.0028

Key = tuple[str, str, int | None]


class RunBrief(Record):
    run_id: str
    pipeline: str
    status: str
    started: str | None = None
    pipeline_sha256: str | None = None
    versions: dict[str, Any] | None = None

    @classmethod
    def of(cls, run: StoredRun) -> RunBrief:
        return cls(**{k: getattr(run, k) for k in cls.model_fields})


class BenchKey(Record):
    device: str
    variant: str
    threads: int | None = None


class LatencyChange(BenchKey):
    base_p50_s: float | None = None
    candidate_p50_s: float | None = None
    base_p90_s: float | None = None
    candidate_p90_s: float | None = None
    ratio: float | None = None
    p_value: float | None = None
    n_base: int
    n_candidate: int
    significant: bool
    verdict: str  # regression, improvement, no samples, noise, same
    regression: bool
    # the session-level test; all None when neither side was stored with sessions (the JSON of such runs is
    # unchanged: significance is then Mann-Whitney's, as before sessions existed)
    # "sessions", "paired sessions" (a rerun baseline), or "raw samples" (a side has fewer than 2 sessions: the fallback)
    test: str | None = None
    sessions_base: int | None = None
    sessions_candidate: int | None = None
    ratio_ci_low: float | None = None
    ratio_ci_high: float | None = None
    ratio_ci_level: float | None = None
    base_source: str | None = None  # "rerun": the base is the baseline artifact re-measured in the candidate run
    # test "session floors": each side's fastest invoke over its sessions, their ratio and its session interval
    base_floor_s: float | None = None
    candidate_floor_s: float | None = None
    floor_ratio: float | None = None
    floor_ci_low: float | None = None
    floor_ci_high: float | None = None

    omit_if_none = frozenset(
        {"test", "sessions_base", "sessions_candidate", "ratio_ci_low", "ratio_ci_high", "ratio_ci_level", "base_source"}
        | {"base_floor_s", "candidate_floor_s", "floor_ratio", "floor_ci_low", "floor_ci_high"}
    )


class MemoryChange(BenchKey):
    base_bytes: int
    candidate_bytes: int
    ratio: float
    regression: bool


class EnergyChange(BenchKey):
    base_j: float
    candidate_j: float
    ratio: float
    regression: bool


class AccuracyChange(Record):
    variant: str
    base: float
    candidate: float
    delta: float
    regression: bool


class SizeChange(Record):
    variant: str
    base_bytes: int
    candidate_bytes: int
    ratio: float


class KernelShift(BenchKey):
    """A profiled node (`edgeq bench --ops`) that ran another kernel in the candidate than in the base: e.g.
    `Convolution (NHWC, QC8) IGEMM` -> `Convolution (NHWC, F32) IGEMM` after a runtime upgrade (a silent float
    fallback). Shown beside the latency changes; never a regression by itself (its cost is in the latency)."""

    node: str
    op: str
    base_kernel: str
    candidate_kernel: str


class Comparison(Record):
    """`edgeq compare --json`: what changed from a base run to a candidate run, and which changes are regressions."""

    base: RunBrief
    candidate: RunBrief
    same_pipeline_file: bool
    threshold: float
    alpha: float
    accuracy_tolerance: float
    latency: tuple[LatencyChange, ...] = ()
    accuracy: tuple[AccuracyChange, ...] = ()
    memory: tuple[MemoryChange, ...] = ()
    energy: tuple[EnergyChange, ...] = ()
    size: tuple[SizeChange, ...] = ()
    only_in_base: tuple[BenchKey, ...] = ()
    only_in_candidate: tuple[BenchKey, ...] = ()
    regressions: tuple[str, ...] = ()
    regressed: bool = False
    # with a rerun baseline: the base run's figures vs the same artifact re-measured in the candidate run, i.e.
    # what the boards or runtimes changed by themselves (never a regression of the model)
    drift: tuple[LatencyChange, ...] | None = None
    # benchmarks whose sessions ran on a throttled, slowed, busy or hot board (either side): read with care
    state_notes: tuple[str, ...] | None = None  # absent when nothing was flagged: documents stay as they were
    # both runs profiled per op (history schema 8) on a common device x variant x threads: the nodes whose kernel
    # changed (empty: profiles compared, same kernels); absent when the runs have no profiles in common
    kernel_changes: tuple[KernelShift, ...] | None = None

    omit_if_none = frozenset({"drift", "state_notes", "kernel_changes"})


def _ratio(cand: float | None, base: float | None) -> float | None:
    if cand is None or base is None or base == 0:
        return None
    return cand / base


def _verdict(slower: bool, faster: bool, significant: bool, p: float | None) -> str:
    if slower and significant:
        return "regression"
    if faster and significant:
        return "improvement"
    if p is None and (slower or faster):
        return "no samples"
    return "noise" if slower or faster else "same"


def _where(k: Key) -> str:
    device, variant, threads = k
    return f"{variant} on {device} ({threads} thread{'s' if threads != 1 else ''})"


SESSION_TESTS = ("sessions", "paired sessions", "session floors")


def _pairs(b: BenchmarkRow, c: BenchmarkRow) -> list[tuple[float, float]] | None:
    """(baseline, candidate) session medians by session number, when both sides have the same sessions."""
    bs = {s.session: s.p50_s for s in b.per_session or () if s.p50_s is not None}
    cs = {s.session: s.p50_s for s in c.per_session or () if s.p50_s is not None}
    return [(bs[i], cs[i]) for i in sorted(bs)] if bs and bs.keys() == cs.keys() else None


def _session_test(b: BenchmarkRow, c: BenchmarkRow, paired: bool = False) -> dict[str, Any]:
    """The LatencyChange fields of the session-level test (empty when neither side has session data).

    paired: the base was re-measured in the candidate's run, session s of each side back to back
    (benchmark.rerun_baseline), so sessions are compared pair by pair (stats.paired_ratio_ci)."""
    bs, cs = b.session_p50s, c.session_p50s
    if not bs and not cs:
        return {}
    pairs = _pairs(b, c) if paired else None
    ci = paired_ratio_ci(pairs) if pairs else ratio_ci(bs, cs)
    test = "raw samples" if ci is None else ("paired sessions" if pairs else "sessions")
    out: dict[str, Any] = {"test": test, "sessions_base": len(bs) or 1}
    out["sessions_candidate"] = len(cs) or 1
    if ci is not None:
        out.update(ratio_ci_low=ci[0], ratio_ci_high=ci[1], ratio_ci_level=CI_LEVEL)
    bm, cm = b.session_mins, c.session_mins
    floor_ci = floor_ratio_ci(bm, cm)
    if floor_ci is not None:
        out.update(test="session floors", base_floor_s=min(bm), candidate_floor_s=min(cm), floor_ratio=min(cm) / min(bm))
        out.update(floor_ci_low=floor_ci[0], floor_ci_high=floor_ci[1], ratio_ci_level=CI_LEVEL)
    return out


def _why(row: LatencyChange, threshold: float, alpha: float) -> str:
    if row.test == "session floors":
        return (
            f"fastest invoke x{row.floor_ratio:.3f} > {threshold:g}, {row.ratio_ci_level or CI_LEVEL:.0%} session "
            f"interval [{row.floor_ci_low:.3f}, {row.floor_ci_high:.3f}] excludes 1; p50 x{row.ratio:.3f}; "
            f"{row.sessions_base} vs {row.sessions_candidate} sessions"
        )
    if row.test in SESSION_TESTS:
        return (
            f"x{row.ratio:.3f} > {threshold:g}, {row.ratio_ci_level or CI_LEVEL:.0%} session interval of the ratio "
            f"[{row.ratio_ci_low:.3f}, {row.ratio_ci_high:.3f}] excludes 1; {row.sessions_base} vs "
            f"{row.sessions_candidate} sessions" + ("" if row.p_value is None else f"; Mann-Whitney p={row.p_value:.2g}")
        )
    return f"x{row.ratio:.3f} > {threshold:g}, Mann-Whitney p={row.p_value:.2g} < {alpha:g}"


def _latency(
    k: Key, b: BenchmarkRow, c: BenchmarkRow, threshold: float, alpha: float, paired: bool = False
) -> tuple[LatencyChange, str | None]:
    ratio = _ratio(c.p50_s, b.p50_s)
    test = mann_whitney_u(b.samples_s or (), c.samples_s or ())
    p = test.p_value
    sessions = _session_test(b, c, paired)
    floors = sessions.get("test") == "session floors"
    decide = ratio  # the ratio the verdict is on: the p50's, or the floors'
    if floors:
        decide = sessions["floor_ratio"]
        significant = sessions["floor_ci_low"] > 1.0 or sessions["floor_ci_high"] < 1.0
    elif sessions.get("test") in SESSION_TESTS:
        significant = sessions["ratio_ci_low"] > 1.0 or sessions["ratio_ci_high"] < 1.0
    else:
        significant = p is not None and p < alpha
    slower = decide is not None and decide > threshold
    faster = decide is not None and decide < 1.0 / threshold
    verdict = _verdict(slower, faster, significant, p if sessions.get("test") not in SESSION_TESTS else 0.0)
    if verdict == "same" and floors and ratio is not None and not 1.0 / threshold <= ratio <= threshold:
        verdict = "noise"  # the p50 moved past the threshold, the floor did not: some sessions ran on a slowed board
    row = LatencyChange(
        device=k[0],
        variant=k[1],
        threads=k[2],
        base_p50_s=b.p50_s,
        candidate_p50_s=c.p50_s,
        base_p90_s=b.p90_s,
        candidate_p90_s=c.p90_s,
        ratio=ratio,
        p_value=p,
        n_base=test.n_x,
        n_candidate=test.n_y,
        significant=significant,
        verdict=verdict,
        regression=verdict == "regression",
        **sessions,
    )
    if not row.regression or ratio is None or b.p50_s is None or c.p50_s is None:
        return row, None
    unit = units.latency_unit_s([b.p50_s])  # edgeq.units: the unit follows the value, and is always named
    p50s = f"{units.latency_s(b.p50_s, unit)} -> {units.latency_s(c.p50_s, unit)} {unit}"
    return row, f"latency {_where(k)}: p50 {p50s} ({_why(row, threshold, alpha)})"


def _drift(k: Key, then: BenchmarkRow, now: BenchmarkRow, threshold: float, alpha: float) -> LatencyChange:
    """The same artifact measured in the base run and again in the candidate run: the boards' or runtimes' change."""
    row = _latency(k, then, now, threshold, alpha)[0]
    verdict = {"regression": "slower board/runtime", "improvement": "faster board/runtime"}.get(row.verdict, row.verdict)
    return row.replace(variant=k[1] + BASELINE_SUFFIX, verdict=verdict, regression=False)


def _memory(k: Key, b: BenchmarkRow, c: BenchmarkRow, threshold: float) -> tuple[MemoryChange | None, str | None]:
    mr = _ratio(c.peak_rss_bytes, b.peak_rss_bytes)
    if mr is None or b.peak_rss_bytes is None or c.peak_rss_bytes is None:
        return None, None
    row = MemoryChange(
        device=k[0],
        variant=k[1],
        threads=k[2],
        base_bytes=b.peak_rss_bytes,
        candidate_bytes=c.peak_rss_bytes,
        ratio=mr,
        regression=mr > threshold,
    )
    note = f"peak memory {_where(k)}: {b.peak_rss_bytes:,} -> {c.peak_rss_bytes:,} bytes (x{mr:.3f} > {threshold:g})"
    return row, note if row.regression else None


def _energy(k: Key, b: BenchmarkRow, c: BenchmarkRow, threshold: float) -> tuple[EnergyChange | None, str | None]:
    er = _ratio(c.energy_j, b.energy_j)
    if er is None or b.energy_j is None or c.energy_j is None:
        return None, None
    row = EnergyChange(
        device=k[0], variant=k[1], threads=k[2], base_j=b.energy_j, candidate_j=c.energy_j, ratio=er, regression=er > threshold
    )
    note = f"energy per inference {_where(k)}: {b.energy_j:.4g} -> {c.energy_j:.4g} J (x{er:.3f} > {threshold:g})"
    return row, note if row.regression else None


def _nothing_in_common(base: StoredRun, cand: StoredRun, bb: dict[Key, BenchmarkRow], cb: dict[Key, BenchmarkRow]) -> StoreError:
    def desc(r: StoredRun, benches: dict[Key, BenchmarkRow]) -> str:
        devs = sorted({k[0] for k in benches})
        return f"{r.run_id} (pipeline {r.pipeline}, variants {sorted(r.validations) or '-'}, devices {devs or '-'})"

    return StoreError(
        f"runs share no device/variant to compare: base {desc(base, bb)}, candidate {desc(cand, cb)}",
        "compare runs of the same pipeline (`edgeq history --pipeline NAME` lists them)",
    )


def compare(
    base: StoredRun,
    cand: StoredRun,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE,
) -> Comparison:
    """Compare two loaded runs (query.load(..., samples=True)). Raises StoreError when they share nothing."""
    if base.run_id == cand.run_id:
        raise StoreError(
            f"run {base.run_id} compared with itself",
            "name two different runs, or omit both to compare the latest run with the one before it",
        )
    bb = {b.key: b for b in base.benchmarks if b.ok and not b.variant.endswith(BASELINE_SUFFIX)}
    cb = {b.key: b for b in cand.benchmarks if b.ok and not b.variant.endswith(BASELINE_SUFFIX)}
    reruns = {
        (b.device, b.variant.removesuffix(BASELINE_SUFFIX), b.threads): b
        for b in cand.benchmarks
        if b.ok and b.variant.endswith(BASELINE_SUFFIX)
    }
    drift = [_drift(k, bb[k], reruns[k], threshold, alpha) for k in reruns if k in bb]
    bb = {**bb, **{k: reruns[k] for k in cb if k in reruns}}  # a baseline re-measured beside the candidate wins
    common_b = [k for k in cb if k in bb]
    common_v = [k for k in cand.validations if k in base.validations]
    # both benchmarked but on nothing in common (other boards or variants): comparing accuracy alone would mislead
    if (not common_b and bb and cb) or (not common_b and not common_v):
        raise _nothing_in_common(base, cand, bb, cb)
    latency, memory, energy, regressions = [], [], [], []
    for k in common_b:
        lat, note = _latency(k, bb[k], cb[k], threshold, alpha, paired=k in reruns)
        if k in reruns:
            lat = lat.replace(base_source="rerun")
            note = note and f"{note} (against the baseline re-measured in this run)"
        latency.append(lat)
        mem, mem_note = _memory(k, bb[k], cb[k], threshold)
        en, en_note = _energy(k, bb[k], cb[k], threshold)
        memory += [mem] if mem else []
        energy += [en] if en else []
        regressions += [n for n in (note, mem_note, en_note) if n]
    accuracy, size, acc_notes = _validations(base, cand, common_v, accuracy_tolerance)
    regressions += acc_notes
    return Comparison(
        base=RunBrief.of(base),
        candidate=RunBrief.of(cand),
        same_pipeline_file=base.pipeline_sha256 == cand.pipeline_sha256,
        threshold=threshold,
        alpha=alpha,
        accuracy_tolerance=accuracy_tolerance,
        latency=tuple(latency),
        accuracy=tuple(accuracy),
        memory=tuple(memory),
        energy=tuple(energy),
        size=tuple(size),
        only_in_base=tuple(BenchKey(device=k[0], variant=k[1], threads=k[2]) for k in bb if k not in cb),
        only_in_candidate=tuple(BenchKey(device=k[0], variant=k[1], threads=k[2]) for k in cb if k not in bb),
        regressions=tuple(regressions),
        regressed=bool(regressions),
        drift=tuple(drift) if reruns else None,
        state_notes=tuple(flagged_notes((k, bb[k], cb[k]) for k in common_b)) or None,
    )


def _validations(
    base: StoredRun, cand: StoredRun, common: list[str], tolerance: float
) -> tuple[list[AccuracyChange], list[SizeChange], list[str]]:
    accuracy, size, notes = [], [], []
    for v in common:
        b, c = base.validations[v], cand.validations[v]
        if b.accuracy is not None and c.accuracy is not None:
            delta = c.accuracy - b.accuracy
            reg = -delta > tolerance
            accuracy.append(AccuracyChange(variant=v, base=b.accuracy, candidate=c.accuracy, delta=delta, regression=reg))
            if reg:
                notes.append(
                    f"accuracy {v}: {b.accuracy:.4f} -> {c.accuracy:.4f} "
                    f"({delta * 100:+.2f} points, tolerance {tolerance * 100:g})"
                )
        if b.size_bytes and c.size_bytes:
            size.append(
                SizeChange(variant=v, base_bytes=b.size_bytes, candidate_bytes=c.size_bytes, ratio=c.size_bytes / b.size_bytes)
            )
    return accuracy, size, notes


def kernel_shifts(h: Any, base_id: str, cand_id: str) -> tuple[KernelShift, ...] | None:
    """The kernel changes between two stored runs' per-op profiles (None: no profile in common)."""
    from edgeq.results.ops import profile_keys
    from edgeq.results.opstore import load_profiles

    bp = profile_keys(p for p in load_profiles(h, base_id) if p.kind == "ok")
    cp = profile_keys(p for p in load_profiles(h, cand_id) if p.kind == "ok")
    common = [k for k in bp if k in cp]
    if not common:
        return None
    out = []
    for k in common:
        cops = {(o.node, o.op): o for o in cp[k].ops}
        for b in bp[k].ops:
            c = cops.get((b.node, b.op))
            if c is not None and c.kernel != b.kernel:
                out.append(
                    KernelShift(
                        device=k[0],
                        variant=k[1],
                        threads=k[2],
                        node=b.node,
                        op=b.op,
                        base_kernel=b.kernel,
                        candidate_kernel=c.kernel,
                    )
                )
    return tuple(out)


def with_kernel_changes(h: Any, c: Comparison) -> Comparison:
    """`c` with the kernel changes of the two runs' per-op profiles, where both have some (h: an open history)."""
    shifts = kernel_shifts(h, c.base.run_id, c.candidate.run_id)
    return c if shifts is None else c.replace(kernel_changes=shifts)


def compare_runs(
    base_ref: str | None = None,
    cand_ref: str | None = None,
    *,
    db_path: Path | None = None,
    pipeline: str | None = None,
    adhoc: bool = False,
    **opts: Any,
) -> Comparison:
    """Resolve the runs and compare them.

    No refs: the latest run (of `pipeline` if given) vs the previous run of its pipeline.
    BASE only: BASE vs the latest run of BASE's pipeline. Both: exactly those.
    Ad hoc `edgeq bench` runs are candidates or baselines of `latest` only with `adhoc`.
    """
    latest_adhoc = None if adhoc else False
    with query.open_for_reading(db_path) as h:
        if base_ref is None and cand_ref is None:
            cand = query.resolve(h, "latest", pipeline, adhoc=latest_adhoc)
            base = query.previous(h, cand, include_adhoc=adhoc)
            if base is None:
                raise NothingToCompare(
                    f"run {cand.run_id} is the first recorded run of pipeline {cand.pipeline!r} with "
                    "results: nothing to compare it with",
                    "run the pipeline again, or name two runs: edgeq compare BASE CANDIDATE",
                )
        elif cand_ref is None:
            base = query.resolve(h, base_ref, adhoc=latest_adhoc)
            cand = query.resolve(h, "latest", base.pipeline, adhoc=None if adhoc or base.adhoc else False)
            if cand.run_id == base.run_id:
                raise NothingToCompare(
                    f"run {base.run_id} is the latest run of pipeline {base.pipeline!r}: nothing newer to compare it with",
                    "name two runs: edgeq compare BASE CANDIDATE",
                )
        else:
            base = query.resolve(h, base_ref, adhoc=latest_adhoc)
            cand = query.resolve(h, cand_ref, adhoc=latest_adhoc)
        c = compare(query.load(h, base, samples=True), query.load(h, cand, samples=True), **opts)
        return with_kernel_changes(h, c)


def compare_with_previous(run_id: str, *, db_path: Path | None = None, **opts: Any) -> Comparison | None:
    """For `edgeq run --fail-on-regression`: this run vs the previous one of its pipeline (None if it is the first)."""
    with query.open_for_reading(db_path) as h:
        cand = query.resolve(h, run_id)
        base = query.previous(h, cand)
        if base is None:
            return None
        return with_kernel_changes(h, compare(query.load(h, base, samples=True), query.load(h, cand, samples=True), **opts))
