"""Mann-Whitney U test on raw latency samples (normal approximation, tie correction, continuity correction),
and the session-level statistics (median of session medians, spread, order-statistic and bootstrap intervals) further down.

Why not scipy: it is only a transitive dependency here, and the asymptotic test is twenty lines. The
benchmark agent keeps thousands of samples per result, far beyond where the normal approximation is
accurate; below MIN_SAMPLES per side the test is not run (no significance claimed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from edgeq.records import Record

MIN_SAMPLES = 8


class UTest(Record):
    """The outcome of one test: u (for x), z, p_value, the sample counts, and the common-language effect size
    P(x > y) + P(x = y)/2. p_value is None when either side has fewer than MIN_SAMPLES samples."""

    u: float | None = None
    z: float | None = None
    p_value: float | None = None
    n_x: int
    n_y: int
    effect: float | None = None


def mann_whitney_u(x: Iterable[float], y: Iterable[float]) -> UTest:
    """Two-sided test of H0 "x and y come from the same distribution"."""
    import numpy as np

    a = np.asarray(x, dtype=np.float64).ravel()
    b = np.asarray(y, dtype=np.float64).ravel()
    n1, n2 = int(a.size), int(b.size)
    if n1 < MIN_SAMPLES or n2 < MIN_SAMPLES:
        return UTest(n_x=n1, n_y=n2)
    both = np.concatenate([a, b])
    order = np.argsort(both, kind="mergesort")
    s = both[order]
    # average ranks of tied groups: each group [start, end) gets rank (start + end + 1) / 2
    edges = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [s.size]])
    group_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = np.repeat(group_rank, ends - starts)
    r1 = float(ranks[:n1].sum())
    u1 = r1 - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    t = (ends - starts).astype(np.float64)
    tie_term = float(((t**3) - t).sum()) / (n * (n - 1))
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    mu = n1 * n2 / 2.0
    effect = u1 / (n1 * n2)
    if var <= 0:  # every sample equal on both sides: no evidence of any difference
        return UTest(u=u1, z=0.0, p_value=1.0, n_x=n1, n_y=n2, effect=effect)
    d = u1 - mu
    d = math.copysign(max(abs(d) - 0.5, 0.0), d)  # continuity correction (as scipy's use_continuity=True)
    z = d / math.sqrt(var)
    return UTest(u=u1, z=z, p_value=min(1.0, math.erfc(abs(z) / math.sqrt(2.0))), n_x=n1, n_y=n2, effect=effect)


# ------------------------------------------------------------------------------------------------ sessions
#
# A benchmark is K sessions, each a fresh agent process and interpreter. Samples within one session share
# that session's board state (clock, heat, other load), so they are not independent draws: a bootstrap that
# resamples raw samples would give a confidence interval as narrow as the 1e-193 p-values of Mann-Whitney on
# 100,000 samples. The unit of independence is the session, so the bootstrap resamples SESSION MEDIANS
# (with replacement, K per side) for the ratios compare decides on. The interval of one benchmark's median is
# not a bootstrap: with 3-5 session medians a "95 %" bootstrap is about [min, max], whose true level is 75-94 %;
# median_interval gives the exact order-statistic interval and its true level instead. The interval of a ratio
# excludes 1 only when every candidate session is slower than every baseline session (probability 1/20 for
# 3 vs 3 exchangeable sessions: the level the test claims).

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 13  # fixed: the same sessions give the same interval, run after run and in the tests
CI_LEVEL = 0.95


class SessionFigures(Record):
    """One session's latency figures (the unit of the samples given) and its sample count."""

    p50: float
    p90: float
    p99: float
    mean: float
    count: int


class SessionsSummary(Record):
    """Overall figures of K sessions: the headline p50 is the median of session medians; p90/p99, mean and
    std are pooled over every sample; spread is (max - min) / median of the session medians, spread_std
    their standard deviation (ddof 1; None for one session); ci_low/ci_high the order-statistic interval of
    the median of session medians (median_interval; None for one session), ci_level its exact level."""

    sessions: int
    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    min: float
    max: float
    count: int
    spread: float | None = None
    spread_std: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float = CI_LEVEL


def session_figures(samples: Iterable[float]) -> SessionFigures:
    import numpy as np

    a = np.asarray(list(samples), dtype=np.float64)
    if a.size == 0:
        raise ValueError("a session without samples")
    p50, p90, p99 = (float(v) for v in np.percentile(a, [50, 90, 99]))
    return SessionFigures(p50=p50, p90=p90, p99=p99, mean=float(a.mean()), count=int(a.size))


def _bootstrap_medians(values: Iterable[float], rng: Any, resamples: int) -> Any:
    """`resamples` medians of resamples (with replacement, same size) of `values`."""
    import numpy as np

    v = np.asarray(list(values), dtype=np.float64)
    idx = rng.integers(0, v.size, size=(resamples, v.size))
    return np.median(v[idx], axis=1)


def median_interval_level(n: int, k: int) -> float:
    """The exact coverage of [x_(k), x_(n-k+1)] (order statistics of n values) for the population median of any
    continuous distribution: 1 - 2 * P(Binomial(n, 1/2) <= k - 1)."""
    if n < 1 or not 1 <= k <= (n + 1) // 2:
        raise ValueError(f"no order-statistic interval x_({k}), x_({n - k + 1}) of {n} values")
    tail = sum(math.comb(n, i) for i in range(k)) / 2**n
    return 1.0 - 2.0 * tail


def median_interval_rank(n: int, level: float = CI_LEVEL) -> int:
    """The k of the order-statistic interval [x_(k), x_(n-k+1)] of n values: the narrowest one whose exact level
    is still >= `level`, or k = 1 ([min, max], the highest level n values can give) when none reaches it."""
    k = 1
    while k + 1 <= (n + 1) // 2 and median_interval_level(n, k + 1) >= level:
        k += 1
    return k


def median_interval(medians: Iterable[float], *, level: float = CI_LEVEL) -> tuple[float, float, float] | None:
    """(low, high, its exact level) of the median of session medians; None for fewer than two sessions.

    The distribution-free order-statistic interval: with n session medians, [x_(k), x_(n-k+1)] holds the
    median of the sessions' own distribution with probability exactly 1 - 2 * BinomCDF(k - 1; n, 1/2), whatever
    that distribution is (sessions exchangeable, continuous figures). k is the narrowest choice whose level is
    at least `level` (median_interval_rank); with few sessions none is, and [min, max] is given at the level it
    truly has: n = 2: 50 %, 3: 75 %, 4: 87.5 %, 5: 93.75 %, 6: 96.9 %, 8: 99.2 % (k = 2 would be 93 %). A
    percentile bootstrap of 3-5 medians is about [min, max] too but claimed 95 %."""
    m = sorted(medians)
    n = len(m)
    if n < 2:
        return None
    k = median_interval_rank(n, level)
    return m[k - 1], m[n - k], median_interval_level(n, k)


def median_ci(medians: Iterable[float], *, level: float = CI_LEVEL) -> tuple[float, float] | None:
    """median_interval without its level (per-op timings, edgeq.results.ops); None for fewer than two."""
    got = median_interval(medians, level=level)
    return None if got is None else (got[0], got[1])


def ratio_ci(
    base_medians: Iterable[float],
    cand_medians: Iterable[float],
    *,
    level: float = CI_LEVEL,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of median(candidate session medians) / median(baseline session medians).

    Each side is resampled on its own (the sessions of a side are exchangeable; the sides are not).
    None when either side has fewer than two sessions or a baseline median is not positive."""
    import numpy as np

    b, c = list(base_medians), list(cand_medians)
    if len(b) < 2 or len(c) < 2 or min(b) <= 0:
        return None
    rng = np.random.default_rng(seed)
    ratios = _bootstrap_medians(c, rng, resamples) / _bootstrap_medians(b, rng, resamples)
    lo, hi = np.percentile(ratios, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def floor_ratio_ci(
    base_mins: Iterable[float],
    cand_mins: Iterable[float],
    *,
    level: float = CI_LEVEL,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of min(candidate session minima) / min(baseline session minima).

    Why the fastest invoke of the fastest session: on a board shared with anything (other load, a noisy host,
    heat, a lower clock for a while) disturbances only ever ADD time, and they come and go over seconds, so a
    whole session can land slow, even at its fastest (measured on this project's x86 hosts: session medians
    of one unchanged model spread over +-20 %; over 5 back-to-back benchmarks of 5 sessions the median of
    session medians spread 15-23 %, the minimum over the sessions 1.5-3 %). The smallest time seen over
    several sessions is the one figure such noise cannot move up, and a model that really does more work
    moves it. Each side's sessions are resampled on their own, as in
    ratio_ci. None when either side has fewer than two sessions or a baseline minimum is not positive."""
    import numpy as np

    b = np.asarray(list(base_mins), dtype=np.float64)
    c = np.asarray(list(cand_mins), dtype=np.float64)
    if b.size < 2 or c.size < 2 or b.min() <= 0:
        return None
    rng = np.random.default_rng(seed)
    cb = c[rng.integers(0, c.size, size=(resamples, c.size))].min(axis=1)
    bb = b[rng.integers(0, b.size, size=(resamples, b.size))].min(axis=1)
    lo, hi = np.percentile(cb / bb, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def paired_ratio_ci(
    pairs: Iterable[tuple[float, float]],
    *,
    level: float = CI_LEVEL,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the median of candidate/baseline session-median ratios, for sessions
    measured in pairs (session s of the baseline right before session s of the candidate, as a rerun baseline
    is). Drift that hits both members of a pair (other load, heat, clock over minutes) cancels in their ratio,
    so the pairs, not the two sides, are what is resampled.

    Its level is bounded by the pair count: every ratio above 1 happens with probability 2**-K when nothing
    changed (K = 3: 1/8), so a verdict also needs the ratio over the threshold (compare does). None when there
    are fewer than two pairs or a baseline median is not positive."""
    import numpy as np

    p = [(b, c) for b, c in pairs]
    if len(p) < 2 or min(b for b, _ in p) <= 0:
        return None
    r = np.asarray([c / b for b, c in p], dtype=np.float64)
    boot = _bootstrap_medians(r, np.random.default_rng(seed), resamples)
    lo, hi = np.percentile(boot, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)


def summarize_sessions(sessions: list[SessionFigures], pooled: Iterable[float]) -> SessionsSummary:
    """Overall figures of sessions (their own exact figures) and the pooled samples of all of them."""
    import numpy as np

    if not sessions:
        raise ValueError("no sessions to summarize")
    a = np.asarray(list(pooled), dtype=np.float64)
    medians = [s.p50 for s in sessions]
    mid = float(np.median(medians))
    count = sum(s.count for s in sessions)
    mean = sum(s.mean * s.count for s in sessions) / count
    p90, p99 = (
        (float(v) for v in np.percentile(a, [90, 99])) if a.size else (max(s.p90 for s in sessions), max(s.p99 for s in sessions))
    )
    ci = median_interval(medians)
    k = len(sessions)
    return SessionsSummary(
        sessions=k,
        p50=mid,
        p90=p90,
        p99=p99,
        mean=mean,
        std=float(a.std()) if a.size else 0.0,
        min=float(a.min()) if a.size else min(medians),
        max=float(a.max()) if a.size else max(medians),
        count=count,
        spread=(max(medians) - min(medians)) / mid if k > 1 and mid > 0 else None,
        spread_std=float(np.std(medians, ddof=1)) if k > 1 else None,
        ci_low=None if ci is None else ci[0],
        ci_high=None if ci is None else ci[1],
        ci_level=CI_LEVEL if ci is None else ci[2],
    )
