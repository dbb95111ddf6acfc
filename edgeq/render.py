"""Human rendering of core results (rich tables on stdout). JSON output bypasses this module."""

from __future__ import annotations

from edgeq.console import log, table


def _pct(x) -> str:
    return "" if x is None else f"{x * 100:.2f}%"


def _us(ms) -> str:
    return "" if ms is None else f"{ms * 1000:,.1f}"


def _notes(v: dict) -> str:
    """Mixed-precision outcome, else the worst int8 layer: what to look at first when accuracy dropped."""
    from edgeq.results.quality import quality_note, quality_summary

    return quality_note({k: x for k, x in quality_summary(v).items() if k != "qat"})  # QAT shows in the type column


def run_summary(result: dict) -> None:
    stages = result.get("stages", {})
    cached = []
    if stages.get("train", {}).get("cached"):
        cached.append("train")
    for name in ("quantize", "validate"):
        per = stages.get(name, {})
        if per and all(v.get("cached") for v in per.values()):
            cached.append(name)
    rows = []
    for key, v in result.get("variants", {}).items():
        drop = v.get("accuracy_drop")
        rows.append(
            [
                key,
                v.get("type") + (" (QAT)" if v.get("qat") else ""),
                _pct(v.get("accuracy")),
                "" if drop is None else f"{drop * 100:+.2f} pts",
                f"{v.get('size_bytes', 0):,}",
                "" if v.get("size_ratio") is None else f"{v['size_ratio']:.3f}",
                "pass" if v.get("gates", {}).get("passed", True) else "FAIL",
                _notes(v),
            ]
        )
    rt = result.get("runtime", {})
    table(
        f"run {result['run_id']} · pipeline {result['pipeline']} · {rt.get('name', '?')} {rt.get('version', '')}",
        ["variant", "type", "accuracy", "drop vs fp32", "size (bytes)", "size / fp32", "gates", "notes"],
        rows,
    )
    bench = result.get("benchmarks") or []
    if bench:
        brows = []
        for b in bench:
            lat = b.get("latency_ms") or {}
            p = b.get("power") or {}
            rt = b.get("runtime") or {}
            board = b.get("board") or {}
            brows.append(
                [
                    b["device"],
                    b["variant"],
                    b.get("threads"),
                    board.get("arch"),
                    f"{rt.get('name', '')} {rt.get('version', '')}".strip(),
                    _us(lat.get("p50")),
                    _us(lat.get("p90")),
                    _us(lat.get("p99")),
                    _us(b.get("init_ms")),
                    "" if b.get("peak_rss_bytes") is None else f"{b['peak_rss_bytes'] / 2**20:.1f}",
                    "" if p.get("mean_w") is None else f"{p['mean_w']:.2f}",
                    "ok" if b.get("ok") else f"FAILED: {b.get('error')}",
                ]
            )
        table(
            "on-device benchmark (latency in µs)",
            ["device", "variant", "threads", "arch", "runtime", "p50", "p90", "p99", "init", "peak MiB", "W", "status"],
            brows,
        )
    if cached:
        log(f"reused from cache: {', '.join(cached)} (use --force to rerun)")
    log(f"run folder: {result.get('run_dir')}  ({result.get('wall_seconds', 0):.1f}s)")
