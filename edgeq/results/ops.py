"""Per-op profiles: K agent `profile` documents -> one OpProfile, and two OpProfiles -> an OpsDiff.

Statistics as a benchmark's latency (edgeq.results.stats): a row's headline is the median of its session
medians, its interval the bootstrap interval of that median (median_ci); a ratio between two runs is the ratio of
those medians with ratio_ci's interval (each side's sessions resampled on their own).
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from edgeq.records.ops import (
    KernelChange,
    OpChange,
    OpProfile,
    OpRef,
    OpsDiff,
    OpSession,
    OpStat,
    SessionTiming,
)
from edgeq.results.stats import median_ci, ratio_ci


def node_id(row: Mapping[str, Any]) -> str:
    """The id a profiled row is matched by across sessions and runs (see OpStat.node)."""
    if row.get("source") == "xnnpack":
        return f"s{row.get('section')}/{row.get('node')}"
    sub = row.get("subgraph") or 0
    return f"op{row.get('node')}" if not sub else f"op{sub}:{row.get('node')}"


def fingerprint(kernels: Mapping[str, tuple[str, str]]) -> str:
    """A short hash of node -> (op, kernel): equal for two runs whose every op ran the same kernel."""
    text = "\n".join(f"{n}\t{op}\t{k}" for n, (op, k) in sorted(kernels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _timing(values: Sequence[float]) -> SessionTiming | None:
    if not values:
        return None
    ci = median_ci(values)
    return SessionTiming(
        p50_us=round(statistics.median(values), 2),
        ci_low_us=None if ci is None else round(ci[0], 2),
        ci_high_us=None if ci is None else round(ci[1], 2),
        sessions_us=tuple(round(v, 2) for v in values),
    )


def _p50(doc: Mapping[str, Any], key: str) -> float | None:
    block = doc.get(key)
    return float(block["p50"]) if isinstance(block, Mapping) and block.get("p50") is not None else None


def _runtime(doc: Mapping[str, Any]) -> str | None:
    rt = doc.get("runtime")
    if not isinstance(rt, Mapping) or not rt.get("name"):
        return None
    return f"{rt['name']} {rt.get('version') or ''}".strip()


def aggregate(
    device: str,
    variant: str,
    threads: int,
    docs: Sequence[tuple[int, Mapping[str, Any]]],
    *,
    failures: Sequence[tuple[str | None, str | None, str | None]] = (),
    interpreter_p50_us: float | None = None,
) -> OpProfile:
    """One OpProfile from the successful `profile` documents of K sessions ((session number, document)).

    `failures` are the failed sessions' (kind, error, hint). An `unsupported` document makes the profile
    unsupported (the board says why; nothing is made up); no document at all makes it failed."""
    base = {"device": device, "variant": variant, "threads": threads, "interpreter_p50_us": interpreter_p50_us}
    nfail = len(failures)
    unsup = next((d for _, d in docs if d.get("kind") == "unsupported"), None)
    if unsup is not None:
        return OpProfile(
            **base,
            kind="unsupported",
            reason=str(unsup.get("reason") or "the board cannot profile"),
            fix=str(unsup.get("fix") or ""),
            runtime=_runtime(unsup),
            failed_sessions=nfail,
        )
    good = [(s, d) for s, d in docs if d.get("kind", "ok") == "ok" and isinstance(d.get("ops"), list)]
    if not good:
        kind, error, hint = failures[0] if failures else (None, "no profiling session ran", None)
        return OpProfile(**base, kind="failed", error_kind=kind, error=error, hint=hint, failed_sessions=nfail)
    rows: dict[str, dict[str, Any]] = {}
    kernels: dict[str, tuple[str, str]] = {}
    for s, d in good:
        for r in d["ops"]:
            nid = node_id(r)
            kernels.setdefault(nid, (str(r.get("op")), str(r.get("kernel"))))
            row = rows.setdefault(nid, {"first": r, "sessions": []})
            row["sessions"].append(
                OpSession(
                    session=s,
                    p50_us=float(r.get("p50_us") or 0.0),
                    p90_us=float(r.get("p90_us") or 0.0),
                    count=int(r.get("count") or 0),
                )
            )
    ops = tuple(_op(nid, row["first"], tuple(row["sessions"])) for nid, row in rows.items())
    invoke = _timing([v for _, d in good if (v := _p50(d, "invoke_us")) is not None])
    unprof = _timing([v for _, d in good if (v := _p50(d, "unprofiled_invoke_us")) is not None])
    overheads = [float(d["overhead_us"]) for _, d in good if isinstance(d.get("overhead_us"), int | float)]
    total = sum(o.p50_us for o in ops)
    return OpProfile(
        **base,
        kind="ok",
        sessions=len(good),
        failed_sessions=nfail,
        runtime=_runtime(good[0][1]),
        invoke=invoke,
        unprofiled=unprof,
        overhead_us=round(statistics.median(overheads), 2) if overheads else None,
        coverage=round(total / invoke.p50_us, 4) if invoke and invoke.p50_us > 0 else None,
        coverage_unprofiled=round(total / unprof.p50_us, 4) if unprof and unprof.p50_us > 0 else None,
        fingerprint=fingerprint(kernels),
        kernels={n: k for n, (_, k) in kernels.items()},
        ops=ops,
        error_kind=failures[0][0] if failures else None,
        error=failures[0][1] if failures else None,
    )


def _op(nid: str, r: Mapping[str, Any], sessions: tuple[OpSession, ...]) -> OpStat:
    meds = [s.p50_us for s in sessions]
    ci = median_ci(meds)
    m = r.get("maps_to")
    return OpStat(
        node=nid,
        source="xnnpack" if r.get("source") == "xnnpack" else "tflite",
        section=r.get("section"),
        index=int(r.get("node") or 0),
        op=str(r.get("op")),
        kernel=str(r.get("kernel")),
        maps_to=OpRef(index=int(m["index"]), op=str(m["op"])) if isinstance(m, Mapping) and m.get("index") is not None else None,
        mapping=r.get("mapping") if r.get("mapping") in ("exact", "guess", "none") else "none",
        sessions=sessions,
        p50_us=round(statistics.median(meds), 2),
        ci_low_us=None if ci is None else round(ci[0], 2),
        ci_high_us=None if ci is None else round(ci[1], 2),
    )


def top_ops(p: OpProfile, n: int | None) -> list[OpStat]:
    """The rows by time, slowest first (all with n None)."""
    ranked = sorted(p.ops, key=lambda o: -o.p50_us)
    return ranked if n is None else ranked[:n]


def diff(base: OpProfile, cand: OpProfile, threshold: float) -> OpsDiff:
    """The ops of two profiles of one device x variant x threads, matched by node id and op type.

    An op is flagged when its ratio's interval excludes 1 and the ratio passes `threshold` (either way:
    above it, or below 1/threshold); its `share` is its p50 delta over the Invoke p50 delta."""
    b_inv = base.invoke.p50_us if base.invoke else 0.0
    c_inv = cand.invoke.p50_us if cand.invoke else 0.0
    d_inv = c_inv - b_inv
    bmap = {(o.node, o.op): o for o in base.ops}
    cmap = {(o.node, o.op): o for o in cand.ops}
    changes: list[OpChange] = []
    for key, b in bmap.items():
        c = cmap.get(key)
        if c is None:
            continue
        changes.append(_change(b, c, threshold, d_inv))
    kernel_changes = tuple(
        KernelChange(node=b.node, op=b.op, base_kernel=b.kernel, cand_kernel=cmap[k].kernel)
        for k, b in bmap.items()
        if k in cmap and cmap[k].kernel != b.kernel
    )
    return OpsDiff(
        device=base.device,
        variant=base.variant,
        threads=base.threads,
        base_invoke_us=b_inv,
        cand_invoke_us=c_inv,
        invoke_ratio=round(c_inv / b_inv, 4) if b_inv > 0 else None,
        ops=tuple(changes),
        flagged=tuple(
            f"{c.node} {c.op}" + (f" ({c.model_op})" if c.model_op else "")
            for c in sorted(changes, key=lambda c: -(c.cand_us - c.base_us))
            if c.flagged
        ),
        kernel_changes=kernel_changes,
        only_base=tuple(f"{n} {op}" for n, op in bmap if (n, op) not in cmap),
        only_cand=tuple(f"{n} {op}" for n, op in cmap if (n, op) not in bmap),
        fingerprint_changed=base.fingerprint != cand.fingerprint,
    )


def _change(b: OpStat, c: OpStat, threshold: float, d_invoke: float) -> OpChange:
    ratio = c.p50_us / b.p50_us if b.p50_us > 0 else None
    ci = ratio_ci([s.p50_us for s in b.sessions], [s.p50_us for s in c.sessions])
    excludes_one = ci is not None and (ci[0] > 1.0 or ci[1] < 1.0)
    passes = ratio is not None and (ratio >= threshold or ratio <= 1.0 / threshold)
    flagged = excludes_one and passes
    share = (c.p50_us - b.p50_us) / d_invoke if flagged and d_invoke > 0 else None
    m = c.maps_to or b.maps_to
    return OpChange(
        node=b.node,
        op=b.op,
        model_op=None if m is None else f"{m.index} {m.op}",
        base_us=b.p50_us,
        cand_us=c.p50_us,
        ratio=None if ratio is None else round(ratio, 4),
        ci_low=None if ci is None else round(ci[0], 4),
        ci_high=None if ci is None else round(ci[1], 4),
        flagged=flagged,
        share=None if share is None else round(share, 4),
    )


def profile_keys(profiles: Iterable[OpProfile]) -> dict[tuple[str, str, int], OpProfile]:
    return {(p.device, p.variant, p.threads): p for p in profiles}
