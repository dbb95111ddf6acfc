"""The one latency-unit rule every human-facing table and plot follows (CLI tables, the HTML report).

A table (or plot) picks one unit for all its latency figures from the median of what it shows — µs below 1 ms,
ms below 1 s, else s — and names it in the header or axis, so a 24 ms MobileNet and a 3 µs MLP are both
readable and columns never mix units. JSON documents and Prometheus keep their own fields (ms, seconds).
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


def scale(unit: str) -> float:
    """Multiply seconds by this to get `unit`."""
    return 1e3 / dict(_UNITS)[unit]


def latency_s(seconds: float | None, unit: str) -> str:
    """`latency` for a value in seconds (the history's unit)."""
    return latency(None if seconds is None else seconds * 1e3, unit)


def latency_unit_s(values_s: Iterable[float | None]) -> str:
    """`latency_unit` for values in seconds."""
    return latency_unit(v * 1e3 if isinstance(v, int | float) else None for v in values_s)
