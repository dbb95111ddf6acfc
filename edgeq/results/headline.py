"""The report's headline: ship int8 on these boards? Speed-up, size ratio and accuracy drop per board.

A board says "ship" when the quantized variant is faster there (p50, same thread count) and its accuracy
drop is within budget (its max_accuracy_drop gate, else DEFAULT_BUDGET); otherwise "hold" with the reason.
Pure: reads a stored run, no I/O.
"""

from __future__ import annotations

from edgeq.records import Record
from edgeq.results.rows import BenchmarkRow, StoredRun

DEFAULT_BUDGET = 0.01  # accuracy units (1 point) when the pipeline sets no max_accuracy_drop gate
QUANTIZED = ("int8", "int16x8", "edgetpu", "dynamic", "float16", "weight_only")


class BoardVerdict(Record):
    device: str
    threads: int | None = None
    speedup: float | None  # fp32 p50 / variant p50 (> 1: faster)
    ship: bool
    reason: str


class Headline(Record):
    variant: str
    size_ratio: float | None = None
    accuracy_drop: float | None = None  # fp32 accuracy minus the variant's (0..1)
    budget: float
    boards: tuple[BoardVerdict, ...] = ()

    @property
    def ship_on(self) -> list[str]:
        return [b.device for b in self.boards if b.ship]


def _p50(rows: tuple[BenchmarkRow, ...], variant: str) -> dict[tuple[str, int | None], float]:
    return {(b.device, b.threads): b.p50_s for b in rows if b.ok and b.variant == variant and b.p50_s}


def headline(run: StoredRun) -> Headline | None:
    """The first quantized variant beside an fp32 one, judged per board; None when there is none."""
    if "fp32" not in run.validations:
        return None
    key = next((k for k, v in run.validations.items() if k != "fp32" and (v.type or k) in QUANTIZED), None)
    if key is None:
        return None
    v = run.validations[key]
    budget = v.accuracy_drop_budget if v.accuracy_drop_budget is not None else DEFAULT_BUDGET
    acc_ok = v.accuracy_drop is None or v.accuracy_drop <= budget
    base, cand = _p50(run.benchmarks, "fp32"), _p50(run.benchmarks, key)
    boards = []
    for (device, threads), p in sorted(cand.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        ref = base.get((device, threads))
        speed = ref / p if ref else None
        if speed is not None and speed < 1.0:
            reason = f"slower than fp32 here ({speed:.2f}x)"
        elif not acc_ok:
            reason = f"accuracy drop {100 * (v.accuracy_drop or 0):.2f} pts over the {100 * budget:.2f}-pt budget"
        elif speed is None:
            reason = "no fp32 measurement on this board to compare with"
        else:
            reason = f"{speed:.2f}x faster"
        boards.append(
            BoardVerdict(
                device=device, threads=threads, speedup=speed, ship=bool(speed and speed >= 1.0 and acc_ok), reason=reason
            )
        )
    return Headline(variant=key, size_ratio=v.size_ratio, accuracy_drop=v.accuracy_drop, budget=budget, boards=tuple(boards))
