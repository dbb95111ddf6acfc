"""The numeric checks of a run in the history (schema version 4): one row per variant x board.

A table of its own, so older databases and runs without the check are unchanged (they simply have no rows):
the first op over the tolerance (where the board's numbers leave the host's), the worst op, or why the
check could not run. Per-op errors stay in the run's manifest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from edgeq.records import Record
from edgeq.records.numeric import NumericCheck

if TYPE_CHECKING:
    from edgeq.results.db import History


INSERT = "INSERT OR REPLACE INTO numeric_checks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SELECT = "SELECT * FROM numeric_checks WHERE run_id = ? ORDER BY rowid"


class NumericRow(Record):
    """A `numeric_checks` row."""

    device: str
    variant: str = ""
    ok: bool
    rows: int | None = None
    ops_compared: int | None = None
    tolerance_lsb: float | None = None
    tolerance_rel: float | None = None
    first_op_index: int | None = None
    first_op: str | None = None
    first_tensor: str | None = None
    first_error: float | None = None
    first_unit: str | None = None
    worst_op_index: int | None = None
    worst_error: float | None = None
    worst_unit: str | None = None
    runtime_name: str | None = None
    runtime_version: str | None = None
    kind: str | None = None
    error: str | None = None

    @property
    def summary(self) -> str:
        """ "matches", the first diverging op, or why the check could not run (history, report)."""
        if self.ok:
            return "matches"
        if self.first_op_index is None:
            return f"check failed: {self.error or self.kind}"
        err = "shape/dtype mismatch" if self.first_error is None else f"{self.first_error:.3g} {self.first_unit}"
        return f"op #{self.first_op_index} {self.first_op} ({self.first_tensor}): {err}"


def rows_of(run_id: str, checks: Iterable[NumericCheck]) -> list[tuple[Any, ...]]:
    out = []
    for c in checks:
        f, w, rt = c.first_divergent, c.worst, c.runtime
        row: tuple[Any, ...] = (run_id, c.device, c.variant or "", int(c.ok), c.rows, c.ops_compared)
        row += (c.tolerance_lsb, c.tolerance_rel)
        row += (f.op_index, f.op, f.name or str(f.tensor), f.error, f.unit) if f else (None,) * 5
        row += (w.op_index, w.error, w.unit) if w else (None,) * 3
        row += (rt.name, rt.version) if rt else (None, None)
        out.append((*row, c.kind, c.error))
    return out


def read(h: History, run_id: str) -> tuple[NumericRow, ...]:
    cur = h.execute(_SELECT, (run_id,))
    cols = [d[0] for d in cur.description]
    return tuple(NumericRow.from_stored({k: v for k, v in zip(cols, r, strict=True) if k != "run_id"}) for r in cur.fetchall())
