"""Mann-Whitney U test on raw latency samples (normal approximation, tie correction, continuity correction).

Why not scipy: it is only a transitive dependency here, and the asymptotic test is twenty lines. The
benchmark agent keeps thousands of samples per result, far beyond where the normal approximation is
accurate; below MIN_SAMPLES per side the test is not run (no significance claimed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

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
