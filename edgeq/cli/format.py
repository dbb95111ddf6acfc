"""How numbers look in every human table: one latency-unit rule, bytes, percentages.

Latency: a table picks one unit for all its latency columns from the median of what it shows —
µs below 1 ms, ms below 1 s, else s — and names it in the header, so a 24 ms MobileNet and a
3 µs MLP are both readable and columns never mix units. JSON documents keep their own fields.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable

_UNITS = (("µs", 1e-3), ("ms", 1.0), ("s", 1e3))  # (name, size in ms)


def latency_unit(values_ms: Iterable[float | None]) -> str:
    vals = [v for v in values_ms if isinstance(v, int | float)]
    if not vals:
        return "ms"
    m = statistics.median(vals)
    if m < 1.0:
        return "µs"
    return "ms" if m < 1000.0 else "s"


def latency(ms: float | None, unit: str) -> str:
    if not isinstance(ms, int | float):
        return ""
    size = dict(_UNITS)[unit]
    v = ms / size
    return f"{v:,.1f}" if abs(v) >= 100 else f"{v:,.2f}" if abs(v) >= 10 else f"{v:,.3g}"


def pct(x: float | None) -> str:
    return "" if x is None else f"{x * 100:.2f}%"


def pts(x: float | None) -> str:
    """An accuracy difference (0..1) in percentage points, signed."""
    return "" if x is None else f"{x * 100:+.2f} pts"


def size(n: float | None) -> str:
    """Bytes in decimal units (kB = 1000 B), as disks and networks count them."""
    if n is None:
        return ""
    v = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(v) < 1000:
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1000.0
    return f"{v:.1f} TB"


def mib(n: float | None) -> str:
    """Memory in MiB (what `free` and RSS tooling show)."""
    return "" if n is None else f"{n / 2**20:.1f}"


def count(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def num(x: float | None, spec: str = ".4g") -> str:
    return f"{x:{spec}}" if isinstance(x, int | float) else ""


def ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def seconds(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}s"
