"""Find a model's per-op profile in the history and read its time per model op (`edgeq inspect --profile`, the
per-layer quantization error table): "worst layer" by error and by cost together.

A profile belongs to a run x variant; the variant's artifact sha256 (the validations table) names the model.
A profiled row's model op is exact for ops the interpreter ran itself and a guess for XNNPACK operators (their
events carry no op index): every figure keeps its `mapping` so a reader can mark guesses.
"""

from __future__ import annotations

from pathlib import Path

from edgeq.errors import StoreError
from edgeq.records import Record
from edgeq.records.ops import OpProfile
from edgeq.results.db import History
from edgeq.results.opstore import load_profiles


class OpTime(Record):
    """The measured time of one model op: the sum of the profiled rows mapped to it (XNNPACK may split one model op
    in several operators), `mapping` "exact" only when every one of them is exact."""

    index: int
    p50_us: float
    share: float | None = None  # of the profiled Invoke p50
    mapping: str
    nodes: tuple[str, ...] = ()
    kernels: tuple[str, ...] = ()


class ProfileRef(Record):
    run_id: str
    device: str
    variant: str
    threads: int
    runtime: str | None = None
    coverage: float | None = None


def op_times(p: OpProfile) -> dict[int, OpTime]:
    """Model op index (main subgraph) -> its measured time; rows mapped to no model op are left out."""
    inv = p.invoke.p50_us if p.invoke else None
    acc: dict[int, list] = {}
    for o in p.ops:
        if o.maps_to is None or o.mapping == "none" or (o.node.startswith("op") and ":" in o.node):  # other subgraph
            continue
        acc.setdefault(o.maps_to.index, []).append(o)
    out = {}
    for i, rows in sorted(acc.items()):
        t = sum(o.p50_us for o in rows)
        out[i] = OpTime(
            index=i,
            p50_us=round(t, 2),
            share=None if not inv else round(t / inv, 4),
            mapping="exact" if all(o.mapping == "exact" for o in rows) else "guess",
            nodes=tuple(o.node for o in rows),
            kernels=tuple(dict.fromkeys(o.kernel for o in rows)),
        )
    return out


def _ref(run_id: str, p: OpProfile) -> ProfileRef:
    return ProfileRef(
        run_id=run_id, device=p.device, variant=p.variant, threads=p.threads, runtime=p.runtime, coverage=p.coverage
    )


def find_profile(
    h: History, *, sha256: str | None = None, run_id: str | None = None, variant: str | None = None, device: str | None = None
) -> tuple[ProfileRef, OpProfile] | None:
    """The profile of run `run_id` (its variant whose artifact is `sha256`, or `variant`), else the latest stored
    profile of a run whose variant had that sha256. `device` narrows to one board. None: nothing profiled."""
    sql = (
        "SELECT p.run_id, p.variant FROM op_profiles p JOIN runs r ON r.run_id = p.run_id "
        "LEFT JOIN validations v ON v.run_id = p.run_id AND v.variant = p.variant WHERE p.kind = 'ok'"
    )
    args: list[object] = []
    if run_id is not None:
        sql += " AND p.run_id = ?"
        args.append(run_id)
    if sha256 is not None and variant is None:
        sql += " AND v.sha256 = ?"
        args.append(sha256)
    if variant is not None:
        sql += " AND p.variant = ?"
        args.append(variant)
    if device is not None:
        sql += " AND p.device = ?"
        args.append(device)
    row = h.execute(sql + " ORDER BY r.started_ts DESC, p.threads, p.device LIMIT 1", tuple(args)).fetchone()
    if row is None:
        return None
    rid, var = row
    for p in load_profiles(h, rid):
        if p.variant == var and p.kind == "ok" and (device is None or p.device == device):
            return _ref(rid, p), p
    return None


def profile_for_model(
    sha256: str, run_ref: str | None = None, *, device: str | None = None, db_path: Path | None = None
) -> tuple[ProfileRef, OpProfile] | None:
    """For `edgeq inspect`: `run_ref` given, that run's profile of this model (a StoreError if it has none);
    else the latest stored profile of this model, or None."""
    from edgeq.results import query

    with query.open_for_reading(db_path) as h:
        if run_ref is None:
            return find_profile(h, sha256=sha256, device=device)
        run = query.resolve(h, run_ref, adhoc=None)
        found = find_profile(h, sha256=sha256, run_id=run.run_id, device=device)
        if found is None:
            raise StoreError(
                f"run {run.run_id} has no per-op profile of this model (sha256 {sha256[:12]})",
                "profile it with `edgeq bench MODEL --ops`, or omit --profile RUN for the latest profile of this model",
            )
        return found
