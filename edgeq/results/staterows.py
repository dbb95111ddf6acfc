"""The `benchmark_state` row of a benchmark (schema version 5): its board-state flags, trend and trajectory."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from edgeq.records.fleet import BenchResult

INSERT_STATE = "INSERT INTO benchmark_state VALUES (?, ?, ?, ?, ?, ?, ?)"


def state_row(b: BenchResult) -> tuple[Any, ...] | None:
    """The row without its benchmark id; None for a result that carries no board state (older agents, failures)."""
    fields = b.model_fields_set
    if not b.ok or not fields & {"flags", "trend", "temp_max_c", "trajectory_ms", "notes"}:
        return None
    per = [
        {k: v for k, v in s.to_json().items() if k in ("session", "flags", "trend", "temp_max_c", "cooldown_s")}
        for s in b.sessions
    ]
    return (
        json.dumps(list(b.flags)),
        b.trend,
        b.temp_max_c,
        json.dumps([round(w.p50 / 1000.0, 9) for w in b.trajectory_ms]) if b.trajectory_ms else None,
        json.dumps(list(b.notes)) if b.notes else None,
        json.dumps(per) if per else None,
    )


def flagged_notes(pairs: Iterable[tuple[tuple[str, str, int | None], Any, Any]]) -> list[str]:
    """compare's notes for (key, base row, candidate row) pairs whose sessions were flagged (BenchmarkRow.flags)."""
    out = []
    for (device, variant, threads), base, cand in pairs:
        sides = [(name, row.flags) for name, row in (("base", base), ("candidate", cand)) if row.flags]
        if sides:
            what = "; ".join(f"{name} flagged {', '.join(flags)}" for name, flags in sides)
            out.append(
                f"note: {variant} on {device} ({threads} threads): {what} - the board was not in a steady state, "
                "read this ratio with care"
            )
    return out
