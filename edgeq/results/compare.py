"""Compare two runs: latency per device x variant x threads (p50 ratio AND Mann-Whitney U on raw samples),
accuracy per variant, peak memory and energy per inference. Pure logic over loaded runs, plus a resolver."""

from __future__ import annotations

from pathlib import Path

from edgeq.errors import StoreError
from edgeq.results import query
from edgeq.results.stats import mann_whitney_u

DEFAULT_THRESHOLD = 1.10  # 10% slower p50: below this, nightly noise on a shared board dominates
DEFAULT_ALPHA = 0.05
DEFAULT_ACCURACY_TOLERANCE = 0.005  # half a point: one image of a ~360-image test split is 0.0028


def _key(b: dict) -> tuple:
    return (b["device"], b["variant"], b["threads"])


def _ratio(cand, base):
    if cand is None or base is None or base == 0:
        return None
    return cand / base


def _brief(run: dict) -> dict:
    return {k: run.get(k) for k in ("run_id", "pipeline", "status", "started", "pipeline_sha256")} | {
        "versions": run.get("versions")
    }


def compare(
    base: dict,
    cand: dict,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = DEFAULT_ALPHA,
    accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE,
) -> dict:
    """Compare two loaded runs (query.load(..., samples=True)). Raises StoreError when they share nothing."""
    if base["run_id"] == cand["run_id"]:
        raise StoreError(
            f"run {base['run_id']} compared with itself",
            "name two different runs, or omit both to compare the latest run with the one before it",
        )
    bb = {_key(b): b for b in base.get("benchmarks", []) if b.get("ok")}
    cb = {_key(b): b for b in cand.get("benchmarks", []) if b.get("ok")}
    bv, cv = base.get("validations", {}), cand.get("validations", {})
    common_b = [k for k in cb if k in bb]
    common_v = [k for k in cv if k in bv]
    # both benchmarked but on nothing in common (other boards or variants): comparing accuracy alone would mislead
    if (not common_b and bb and cb) or (not common_b and not common_v):

        def desc(r, benches, vals):
            devs = sorted({k[0] for k in benches})
            return f"{r['run_id']} (pipeline {r['pipeline']}, variants {sorted(vals) or '-'}, devices {devs or '-'})"

        raise StoreError(
            f"runs share no device/variant to compare: base {desc(base, bb, bv)}, candidate {desc(cand, cb, cv)}",
            "compare runs of the same pipeline (`edgeq history --pipeline NAME` lists them)",
        )
    latency, memory, energy, regressions = [], [], [], []
    for k in common_b:
        b, c = bb[k], cb[k]
        device, variant, threads = k
        where = f"{variant} on {device} ({threads} thread{'s' if threads != 1 else ''})"
        ratio = _ratio(c["p50_s"], b["p50_s"])
        test = mann_whitney_u(b.get("samples_s") or [], c.get("samples_s") or [])
        p = test["p_value"]
        significant = p is not None and p < alpha
        slower = ratio is not None and ratio > threshold
        faster = ratio is not None and ratio < 1.0 / threshold
        verdict = (
            "regression"
            if slower and significant
            else "improvement"
            if faster and significant
            else "no samples"
            if p is None and (slower or faster)
            else "noise"
            if slower or faster
            else "same"
        )
        row = {
            "device": device,
            "variant": variant,
            "threads": threads,
            "base_p50_s": b["p50_s"],
            "candidate_p50_s": c["p50_s"],
            "base_p90_s": b["p90_s"],
            "candidate_p90_s": c["p90_s"],
            "ratio": ratio,
            "p_value": p,
            "n_base": test["n_x"],
            "n_candidate": test["n_y"],
            "significant": significant,
            "verdict": verdict,
            "regression": verdict == "regression",
        }
        latency.append(row)
        if row["regression"]:
            regressions.append(
                f"latency {where}: p50 {b['p50_s'] * 1e6:.4g} -> {c['p50_s'] * 1e6:.4g} µs "
                f"(x{ratio:.3f} > {threshold:g}, Mann-Whitney p={p:.2g} < {alpha:g})"
            )
        mr = _ratio(c.get("peak_rss_bytes"), b.get("peak_rss_bytes"))
        if mr is not None:
            reg = mr > threshold
            memory.append(
                {
                    "device": device,
                    "variant": variant,
                    "threads": threads,
                    "base_bytes": b["peak_rss_bytes"],
                    "candidate_bytes": c["peak_rss_bytes"],
                    "ratio": mr,
                    "regression": reg,
                }
            )
            if reg:
                regressions.append(
                    f"peak memory {where}: {b['peak_rss_bytes']:,} -> {c['peak_rss_bytes']:,} bytes (x{mr:.3f} > {threshold:g})"
                )
        er = _ratio(c.get("energy_j"), b.get("energy_j"))
        if er is not None:
            reg = er > threshold
            energy.append(
                {
                    "device": device,
                    "variant": variant,
                    "threads": threads,
                    "base_j": b["energy_j"],
                    "candidate_j": c["energy_j"],
                    "ratio": er,
                    "regression": reg,
                }
            )
            if reg:
                regressions.append(
                    f"energy per inference {where}: {b['energy_j']:.4g} -> {c['energy_j']:.4g} J (x{er:.3f} > {threshold:g})"
                )
    accuracy, size = [], []
    for v in common_v:
        b, c = bv[v], cv[v]
        if b.get("accuracy") is not None and c.get("accuracy") is not None:
            delta = c["accuracy"] - b["accuracy"]
            reg = -delta > accuracy_tolerance
            accuracy.append({"variant": v, "base": b["accuracy"], "candidate": c["accuracy"], "delta": delta, "regression": reg})
            if reg:
                regressions.append(
                    f"accuracy {v}: {b['accuracy']:.4f} -> {c['accuracy']:.4f} "
                    f"({delta * 100:+.2f} points, tolerance {accuracy_tolerance * 100:g})"
                )
        if b.get("size_bytes") and c.get("size_bytes"):
            size.append(
                {
                    "variant": v,
                    "base_bytes": b["size_bytes"],
                    "candidate_bytes": c["size_bytes"],
                    "ratio": c["size_bytes"] / b["size_bytes"],
                }
            )
    return {
        "base": _brief(base),
        "candidate": _brief(cand),
        "same_pipeline_file": base.get("pipeline_sha256") == cand.get("pipeline_sha256"),
        "threshold": threshold,
        "alpha": alpha,
        "accuracy_tolerance": accuracy_tolerance,
        "latency": latency,
        "accuracy": accuracy,
        "memory": memory,
        "energy": energy,
        "size": size,
        "only_in_base": [dict(zip(("device", "variant", "threads"), k, strict=False)) for k in bb if k not in cb],
        "only_in_candidate": [dict(zip(("device", "variant", "threads"), k, strict=False)) for k in cb if k not in bb],
        "regressions": regressions,
        "regressed": bool(regressions),
    }


def compare_runs(
    base_ref: str | None = None, cand_ref: str | None = None, *, db_path: Path | None = None, pipeline: str | None = None, **opts
) -> dict:
    """Resolve the runs and compare them.

    No refs: the latest run (of `pipeline` if given) vs the previous run of its pipeline.
    BASE only: BASE vs the latest run of BASE's pipeline. Both: exactly those.
    """
    with query.open_for_reading(db_path) as h:
        if base_ref is None and cand_ref is None:
            cand = query.resolve(h, "latest", pipeline)
            base = query.previous(h, cand)
            if base is None:
                raise StoreError(
                    f"run {cand['run_id']} is the first recorded run of pipeline {cand['pipeline']!r} with "
                    "results: nothing to compare it with",
                    "run the pipeline again, or name two runs: edgeq compare BASE CANDIDATE",
                )
        elif cand_ref is None:
            base = query.resolve(h, base_ref)
            cand = query.resolve(h, "latest", base["pipeline"])
            if cand["run_id"] == base["run_id"]:
                raise StoreError(
                    f"run {base['run_id']} is the latest run of pipeline {base['pipeline']!r}: nothing newer to compare it with",
                    "name two runs: edgeq compare BASE CANDIDATE",
                )
        else:
            base = query.resolve(h, base_ref)
            cand = query.resolve(h, cand_ref)
        return compare(query.load(h, base, samples=True), query.load(h, cand, samples=True), **opts)


def compare_with_previous(run_id: str, *, db_path: Path | None = None, **opts) -> dict | None:
    """For `edgeq run --fail-on-regression`: this run vs the previous one of its pipeline (None if it is the first)."""
    with query.open_for_reading(db_path) as h:
        cand = query.resolve(h, run_id)
        base = query.previous(h, cand)
        if base is None:
            return None
        return compare(query.load(h, base, samples=True), query.load(h, cand, samples=True), **opts)
