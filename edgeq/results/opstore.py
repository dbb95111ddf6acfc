"""Per-op profiles in the history (schema version 8: op_profiles, op_profile_ops, kernel_fingerprints).

A run's profiles are stored after the run itself (its `runs` row must exist); `load_profiles` reads them back as
OpProfile records (OpProfile.from_stored: a newer edgeq's keys are kept).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from edgeq.errors import StoreError
from edgeq.records import RecordError
from edgeq.records.ops import OpProfile, OpsComparison
from edgeq.results.db import History, open_history
from edgeq.results.ops import diff, profile_keys

OPS_FILE = "ops.json"  # a pipeline run's per-op profiles (an OpsReport), in <run dir>/bench/, stored with the run


def store_profiles(h: History, run_id: str, profiles: Iterable[OpProfile]) -> int:
    """Write a run's profiles (replacing any it had for the same device x variant x threads); returns how many."""
    n = 0
    with h.write("storing op profiles") as c:
        if c.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise StoreError(f"no run {run_id} in the history to attach op profiles to", "record the run first")
        for p in profiles:
            c.execute(
                "DELETE FROM op_profiles WHERE run_id = ? AND device = ? AND variant = ? AND threads = ?",
                (run_id, p.device, p.variant, p.threads),
            )
            inv, unp = p.invoke, p.unprofiled
            cur = c.execute(
                "INSERT INTO op_profiles (run_id, device, variant, threads, kind, sessions, reason, fix, error, runtime,"
                " invoke_p50_us, invoke_ci_low_us, invoke_ci_high_us, unprofiled_p50_us, interpreter_p50_us, overhead_us,"
                " coverage, fingerprint, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    p.device,
                    p.variant,
                    p.threads,
                    p.kind,
                    p.sessions,
                    p.reason,
                    p.fix,
                    p.error,
                    p.runtime,
                    inv.p50_us if inv else None,
                    inv.ci_low_us if inv else None,
                    inv.ci_high_us if inv else None,
                    unp.p50_us if unp else None,
                    p.interpreter_p50_us,
                    p.overhead_us,
                    p.coverage,
                    p.fingerprint,
                    json.dumps(p.to_json()),
                ),
            )
            pid = cur.lastrowid
            for o in p.ops:
                c.execute(
                    "INSERT INTO op_profile_ops (profile_id, node, op, kernel, maps_to_index, maps_to_op, mapping, p50_us,"
                    " ci_low_us, ci_high_us, session_p50_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        pid,
                        o.node,
                        o.op,
                        o.kernel,
                        o.maps_to.index if o.maps_to else None,
                        o.maps_to.op if o.maps_to else None,
                        o.mapping,
                        o.p50_us,
                        o.ci_low_us,
                        o.ci_high_us,
                        json.dumps([s.p50_us for s in o.sessions]),
                    ),
                )
            if p.fingerprint:
                kernels = {o.node: {"op": o.op, "kernel": o.kernel} for o in p.ops}
                c.execute(
                    "INSERT OR IGNORE INTO kernel_fingerprints (fingerprint, kernels) VALUES (?, ?)",
                    (p.fingerprint, json.dumps(kernels, sort_keys=True)),
                )
            n += 1
    return n


def record_profiles(run_id: str, profiles: Iterable[OpProfile], db_path: Path | None = None) -> int:
    """store_profiles on the default (or given) history database."""
    with open_history(db_path, create=True) as h:
        return store_profiles(h, run_id, profiles)


def record_run_profiles(run_id: str, run_dir: Path, db_path: Path | None = None) -> int:
    """Store the profiles a pipeline run kept in <run_dir>/bench/ops.json (none: 0)."""
    from edgeq.records.ops import OpsReport

    f = Path(run_dir) / "bench" / OPS_FILE
    if not f.is_file():
        return 0
    try:
        report = OpsReport.from_stored(json.loads(f.read_text()))
    except (RecordError, ValueError) as e:
        raise StoreError(f"{f}: not an op profile report ({e})", "rerun the pipeline's benchmark stage") from None
    return record_profiles(run_id, report.profiles, db_path)


def load_profiles(h: History, run_id: str) -> list[OpProfile]:
    """A run's profiles, by device, variant and threads."""
    rows = h.execute("SELECT doc FROM op_profiles WHERE run_id = ? ORDER BY device, variant, threads", (run_id,)).fetchall()
    out = []
    for (doc,) in rows:
        try:
            out.append(OpProfile.from_stored(json.loads(doc)))
        except (RecordError, ValueError) as e:
            raise StoreError(
                f"history database {h.path}: an op profile of run {run_id} is unreadable ({e})",
                "record the run again with `edgeq bench --ops`",
            ) from None
    return out


def kernel_map(h: History, fp: str) -> dict[str, dict[str, str]] | None:
    """The node -> {op, kernel} map stored under a fingerprint (None if unknown)."""
    row = h.execute("SELECT kernels FROM kernel_fingerprints WHERE fingerprint = ?", (fp,)).fetchone()
    return None if row is None else json.loads(row[0])


def compare_ops(
    base_ref: str,
    cand_ref: str,
    *,
    db_path: Path | None = None,
    threshold: float = 1.10,
) -> OpsComparison:
    """`edgeq compare --ops BASE CANDIDATE`: per device x variant x threads profiled in both, the ops matched by node
    id and op type (edgeq.results.ops.diff); what was profiled in one run only is named in `unmatched`."""
    from edgeq.results import query

    with query.open_for_reading(db_path) as h:
        base = query.resolve(h, base_ref, adhoc=None)
        cand = query.resolve(h, cand_ref, adhoc=None)
        bp = profile_keys(p for p in load_profiles(h, base.run_id) if p.kind == "ok")
        cp = profile_keys(p for p in load_profiles(h, cand.run_id) if p.kind == "ok")
    if not bp or not cp:
        none = [r.run_id for r, p in ((base, bp), (cand, cp)) if not p]
        raise StoreError(
            f"no per-op profiles stored for run {' and '.join(none)}",
            "profile with `edgeq bench --ops` (or a pipeline's `benchmark.ops: true`), then compare those runs",
        )
    diffs = tuple(diff(bp[k], cp[k], threshold) for k in bp if k in cp)
    unmatched = tuple(
        f"{d}/{v}/t{t} ({'base' if k in bp else 'candidate'} only)"
        for k in {**bp, **cp}
        if k not in bp or k not in cp
        for d, v, t in [k]
    )
    return OpsComparison(
        base=base.run_id,
        candidate=cand.run_id,
        threshold=threshold,
        diffs=diffs,
        unmatched=unmatched,
        regressed=any(any(o.flagged and (o.ratio or 0) > 1 for o in d.ops) for d in diffs),
    )
