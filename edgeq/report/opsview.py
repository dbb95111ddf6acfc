"""Per-op views of a run's profiles (`benchmark.ops` / `edgeq bench --ops`) for the report: where the time goes, and a
quantized variant beside fp32 op by op on the same board. Pure: OpProfile records in, rows out.

Pairing two variants' ops (their models differ: int8 adds QUANTIZE/DEQUANTIZE, XNNPACK rewrites differ):
1. "model op": both rows map exactly (an op the interpreter ran itself carries its model op index) to the same
   model op index and name;
2. "node order": the rest, aligned in execution order by op type (difflib's longest matching blocks over the op
   type sequence): a position match, a hint rather than a fact;
rows left over are shown on their side only.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from edgeq.records.ops import OpProfile, OpStat

TOP = 12  # bars per chart: a MobileNet has ~66 rows, the slowest dozen carry most of the time and stay readable
PairHow = Literal["model op", "node order", "one side"]


@dataclass(frozen=True)
class OpPair:
    ref: OpStat | None  # the reference variant's row (fp32)
    other: OpStat | None  # the quantized variant's row
    how: PairHow

    @property
    def loss_us(self) -> float:
        """How much slower the quantized variant's op is (negative: faster)."""
        return (self.other.p50_us if self.other else 0.0) - (self.ref.p50_us if self.ref else 0.0)

    @property
    def ratio(self) -> float | None:
        if self.ref is None or self.other is None or self.ref.p50_us <= 0:
            return None
        return self.other.p50_us / self.ref.p50_us


def label(o: OpStat) -> str:
    """`node op (model op)`; a guessed mapping is marked `~`."""
    if o.maps_to is None:
        return f"{o.node} {o.op}"
    mark = "" if o.mapping == "exact" else "~"
    return f"{o.node} {o.op} ({mark}{o.maps_to.index} {o.maps_to.op})"


def pair_ops(ref: OpProfile, other: OpProfile) -> list[OpPair]:
    """Every row of both profiles once: paired by exact model op, then by op type in execution order."""

    def exact(o: OpStat) -> tuple[int, str] | None:
        return (o.maps_to.index, o.maps_to.op) if o.maps_to is not None and o.mapping == "exact" else None

    ref_exact = {k: o for o in ref.ops if (k := exact(o)) is not None}
    pairs: list[OpPair] = []
    used_ref: set[str] = set()
    used_other: set[str] = set()
    for o in other.ops:
        k = exact(o)
        if k is not None and k in ref_exact:
            r = ref_exact[k]
            pairs.append(OpPair(r, o, "model op"))
            used_ref.add(r.node)
            used_other.add(o.node)
    rest_r = [o for o in ref.ops if o.node not in used_ref]
    rest_o = [o for o in other.ops if o.node not in used_other]
    sm = difflib.SequenceMatcher(a=[o.op for o in rest_r], b=[o.op for o in rest_o], autojunk=False)
    for a, b, n in sm.get_matching_blocks():
        for i in range(n):
            pairs.append(OpPair(rest_r[a + i], rest_o[b + i], "node order"))
            used_ref.add(rest_r[a + i].node)
            used_other.add(rest_o[b + i].node)
    pairs += [OpPair(o, None, "one side") for o in ref.ops if o.node not in used_ref]
    pairs += [OpPair(None, o, "one side") for o in other.ops if o.node not in used_other]
    return pairs


def variant_pairs(profiles: list[OpProfile], types: dict[str, str | None]) -> list[tuple[OpProfile, OpProfile]]:
    """(fp32 profile, other variant's profile) per device and thread count where both were profiled.

    `types`: variant name -> its type (fp32, int8, ...); the fp32 reference is the variant of type fp32 (else the
    one named fp32)."""
    ok = [p for p in profiles if p.kind == "ok" and p.ops]
    is_ref = {p.variant: (types.get(p.variant) or p.variant) == "fp32" for p in ok}
    out = []
    for r in (p for p in ok if is_ref[p.variant]):
        for o in ok:
            if not is_ref[o.variant] and (o.device, o.threads) == (r.device, r.threads):
                out.append((r, o))
    return out


def losers(pairs: list[OpPair], n: int = TOP) -> list[OpPair]:
    """The pairs whose quantized op lost most time against fp32, largest loss first (n of them)."""
    return sorted(pairs, key=lambda p: -p.loss_us)[:n]


def pair_counts(pairs: list[OpPair]) -> str:
    """How the rows were matched, e.g. `64 by node order, 2 by model op, 3 on one side`."""
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p.how] = counts.get(p.how, 0) + 1
    names = {"model op": "by exact model op", "node order": "by node order (op type alignment)", "one side": "on one side only"}
    return ", ".join(f"{counts[k]} {names[k]}" for k in ("model op", "node order", "one side") if counts.get(k))
