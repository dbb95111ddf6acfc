"""Core results -> table rows: pure functions (no terminal), so every table is unit-testable.

Each function returns (title, columns, rows) or rows; edgeq.cli.output draws them. Cells are plain
strings; foreign text (board output, YAML names) is escaped when drawn, never here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgeq.cli import format as fmt

Table = tuple[str, list[str], list[list[str]]]


# ---- edgeq run


def _notes(v: dict[str, Any]) -> str:
    """Mixed-precision outcome, else the worst int8 layer: what to look at first when accuracy dropped."""
    from edgeq.results.quality import quality_note, quality_summary

    return quality_note({k: x for k, x in quality_summary(v).items() if k != "qat"})  # QAT shows in the type column


def run_variants(doc: dict[str, Any]) -> Table:
    rows = []
    for key, v in doc.get("variants", {}).items():
        ratio = v.get("size_ratio")
        rows.append(
            [
                key,
                v.get("type") + (" (QAT)" if v.get("qat") else ""),
                fmt.pct(v.get("accuracy")),
                fmt.pts(v.get("accuracy_drop")),
                fmt.count(v.get("size_bytes", 0)),
                fmt.ratio(ratio),
                "pass" if v.get("gates", {}).get("passed", True) else "FAIL",
                _notes(v),
            ]
        )
    rt = doc.get("runtime", {})
    title = f"run {doc['run_id']} · pipeline {doc['pipeline']} · {rt.get('name', '?')} {rt.get('version', '')}"
    cols = ["variant", "type", "accuracy", "drop vs fp32", "size (bytes)", "size / fp32", "gates", "notes"]
    return title, cols, rows


def run_benchmarks(doc: dict[str, Any]) -> Table | None:
    bench = doc.get("benchmarks") or []
    if not bench:
        return None
    unit = fmt.latency_unit((b.get("latency_ms") or {}).get("p50") for b in bench)
    rows = []
    for b in bench:
        lat = b.get("latency_ms") or {}
        p = b.get("power") or {}
        rt = b.get("runtime") or {}
        board = b.get("board") or {}
        rows.append(
            [
                b["device"],
                b["variant"],
                b.get("threads"),
                board.get("arch"),
                f"{rt.get('name', '')} {rt.get('version', '')}".strip(),
                fmt.latency(lat.get("p50"), unit),
                fmt.latency(lat.get("p90"), unit),
                fmt.latency(lat.get("p99"), unit),
                fmt.latency(b.get("init_ms"), unit),
                fmt.mib(b.get("peak_rss_bytes")),
                fmt.num(p.get("mean_w"), ".2f"),
                "ok" if b.get("ok") else f"FAILED: {b.get('error')}",
            ]
        )
    cols = ["device", "variant", "threads", "arch", "runtime", "p50", "p90", "p99", "init", "peak MiB", "W", "status"]
    return f"on-device benchmark (latency in {unit})", cols, rows


def cached_stages(doc: dict[str, Any]) -> list[str]:
    stages = doc.get("stages", {})
    cached = ["train"] if stages.get("train", {}).get("cached") else []
    for name in ("quantize", "validate"):
        per = stages.get(name, {})
        if per and all(v.get("cached") for v in per.values()):
            cached.append(name)
    return cached


# ---- fleet


def devices_rows(devices: Sequence[Any]) -> list[list[str]]:
    return [
        [
            d.name,
            d.transport,
            d.address,
            d.user if d.transport == "ssh" else "",
            ", ".join(d.tags),
            d.python,
            d.workdir,
            d.model or d.description,
        ]
        for d in devices
    ]


def check_table(res: dict[str, Any]) -> Table:
    rows = []
    for r in res["devices"]:
        rt = f"{r.get('runtime') or ''} {r.get('runtime_version') or ''}".strip()
        temp = r.get("temperature_c")
        rows.append(
            [
                r["device"],
                "yes" if r.get("reachable") else "no",
                "yes" if r.get("healthy") else "NO",
                r.get("arch"),
                r.get("python"),
                rt,
                fmt.size(r.get("free_bytes")),
                f"{temp:.0f} C" if isinstance(temp, int | float) else "",
                "; ".join(r.get("problems") or ([r["error"]] if r.get("error") else [])),
            ]
        )
    cols = ["Device", "Reachable", "Healthy", "Arch", "Python", "Runtime", "Free disk", "Temp", "Problem"]
    return "device check", cols, rows


def rollout_table(res: dict[str, Any], title: str) -> Table:
    rows = [
        [
            r["device"],
            r["status"],
            r.get("action") or "",
            fmt.size(r.get("bytes_uploaded") or 0),
            fmt.seconds(r.get("seconds") or 0),
            r.get("error") or "",
        ]
        for r in res["devices"]
    ]
    return title, ["Device", "Status", "Action", "Uploaded", "Time", "Error"], rows


def rollout_line(res: dict[str, Any]) -> str:
    counts = ", ".join(f"{v} {k}" for k, v in res["counts"].items() if v)
    return f"{counts}; {fmt.size(res.get('bytes_uploaded', 0))} uploaded in {res['seconds']:.1f}s"


def bench_table(res: dict[str, Any]) -> Table:
    results = [b for r in res["devices"] for b in r["results"]]
    unit = fmt.latency_unit((b.get("latency_ms") or {}).get("p50") for b in results)
    rows = []
    for r in res["devices"]:
        if not r["results"]:
            rows.append([r["device"], "", "", "", "", "", "", "", r["status"] + ": " + (r.get("error") or "")])
        for b in r["results"]:
            lat = b.get("latency_ms") or {}
            rows.append(
                [
                    r["device"],
                    b["threads"],
                    fmt.latency(lat.get("p50"), unit),
                    fmt.latency(lat.get("p90"), unit),
                    fmt.latency(lat.get("p99"), unit),
                    fmt.latency(lat.get("mean"), unit),
                    b.get("count") or "",
                    fmt.latency(b.get("init_ms"), unit),
                    "ok" if b["ok"] else b.get("error"),
                ]
            )
    cols = ["Device", "Threads", f"p50 {unit}", f"p90 {unit}", f"p99 {unit}", f"mean {unit}", "Runs", f"Init {unit}", "Status"]
    return f"bench {res['name']} ({res['sha256'][:12]})", cols, rows


# ---- results


def history_table(runs: list[dict[str, Any]], db: str) -> Table:
    unit = fmt.latency_unit(b["p50_s"] * 1e3 for r in runs for b in r["benchmarks"] if b["ok"] and b["p50_s"] is not None)
    rows = []
    for r in runs:
        acc = ", ".join(f"{v} {fmt.pct(x.get('accuracy'))}" for v, x in r["validations"].items())
        bench = "; ".join(
            f"{b['device']}/{b['variant']}/t{b['threads']} "
            + (fmt.latency(None if b["p50_s"] is None else b["p50_s"] * 1e3, unit) if b["ok"] else "FAILED")
            for b in r["benchmarks"]
        )
        rows.append(
            [
                r["run_id"],
                r["pipeline"],
                r["status"],
                (r["started"] or "")[:19].replace("T", " "),
                "" if r["wall_seconds"] is None else f"{r['wall_seconds']:.1f}",
                acc,
                bench,
            ]
        )
    cols = ["run", "pipeline", "status", "started (UTC)", "wall s", "accuracy", f"p50 {unit} (device/variant/threads)"]
    return f"history {db}", cols, rows


def _ms(s: float | None) -> float | None:
    return None if s is None else s * 1e3


def comparison_tables(c: dict[str, Any]) -> list[Table]:
    b, k = c["base"], c["candidate"]
    out: list[Table] = []
    unit = fmt.latency_unit(_ms(x["base_p50_s"]) for x in c["latency"])
    rows = [
        [
            x["device"],
            x["variant"],
            x["threads"],
            fmt.latency(_ms(x["base_p50_s"]), unit),
            fmt.latency(_ms(x["candidate_p50_s"]), unit),
            fmt.ratio(x["ratio"]),
            "" if x["p_value"] is None else f"{x['p_value']:.2g}",
            x["verdict"].upper() if x["regression"] else x["verdict"],
        ]
        for x in c["latency"]
    ]
    if rows:
        title = (
            f"latency {b['run_id']} -> {k['run_id']} (pipeline {k['pipeline']}; regression = p50 ratio > "
            f"{c['threshold']:g} and Mann-Whitney p < {c['alpha']:g})"
        )
        cols = ["device", "variant", "threads", f"base p50 {unit}", f"cand p50 {unit}", "ratio", "p", "verdict"]
        out.append((title, cols, rows))
    if c["accuracy"]:
        acc = [
            [
                a["variant"],
                fmt.pct(a["base"]),
                fmt.pct(a["candidate"]),
                f"{a['delta'] * 100:+.2f}",
                "REGRESSION" if a["regression"] else "ok",
            ]
            for a in c["accuracy"]
        ]
        out.append(("accuracy", ["variant", "base", "candidate", "delta (pts)", "verdict"], acc))
    other = [
        [
            "peak memory MiB",
            m["device"],
            m["variant"],
            m["threads"],
            fmt.mib(m["base_bytes"]),
            fmt.mib(m["candidate_bytes"]),
            fmt.ratio(m["ratio"]),
            "REGRESSION" if m["regression"] else "ok",
        ]
        for m in c["memory"]
    ]
    other += [
        [
            "energy mJ/inference",
            e["device"],
            e["variant"],
            e["threads"],
            f"{e['base_j'] * 1e3:.4g}",
            f"{e['candidate_j'] * 1e3:.4g}",
            fmt.ratio(e["ratio"]),
            "REGRESSION" if e["regression"] else "ok",
        ]
        for e in c["energy"]
    ]
    if other:
        out.append(
            ("memory and energy", ["metric", "device", "variant", "threads", "base", "candidate", "ratio", "verdict"], other)
        )
    return out


def comparison_notes(c: dict[str, Any]) -> list[str]:
    notes = [f"only in base: {x['variant']} on {x['device']} ({x['threads']} threads)" for x in c["only_in_base"]]
    notes += [f"only in candidate: {x['variant']} on {x['device']} ({x['threads']} threads)" for x in c["only_in_candidate"]]
    if not c["same_pipeline_file"]:
        notes.append("note: the pipeline file changed between the two runs")
    if c["regressions"]:
        notes.append(f"{len(c['regressions'])} regression(s):")
        notes += [f"  {r}" for r in c["regressions"]]
    else:
        notes.append("no regression")
    return notes
