"""How numbers look in every human table: one latency-unit rule, bytes, percentages.

Latency: the one rule of edgeq.units (shared with the HTML report).
"""

from __future__ import annotations

from edgeq.units import latency, latency_unit

__all__ = ["latency", "latency_unit"]


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
