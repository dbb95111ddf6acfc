"""The Prometheus families of stored results (what every sink exports): names, labels, registries, exposition.

Everything is built from the history database (never from a run in flight), in a dedicated
CollectorRegistry, never the global one. Names use base units; labels are bounded (pipeline, device,
variant, threads, arch, quantile, stage): never a run id or a timestamp, so series stay few and stable
across nightly runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from edgeq.records.boardstate import FLAGS
from edgeq.records.ops import OpProfile
from edgeq.results.opstore import load_profiles
from edgeq.results.rows import BenchmarkRow, StoredRun

DEFAULT_JOB = "edgeq"
DEFAULT_PORT = 9108
DEFAULT_TIMEOUT_S = 10.0  # a Pushgateway on the LAN answers in milliseconds; 10 s means it is down or wedged

BENCH_LABELS = ("pipeline", "device", "variant", "threads", "arch")
OPS_LABELS = ("pipeline", "device", "variant", "threads")
# per-op profiles (`benchmark.ops`): the OPS_TOP slowest ops per board x variant x threads, never every op. A
# MobileNetV2 has ~66 profiled ops and the 10 slowest carry most of its time; series per scrape stay at most
# OPS_TOP x devices x variants x threads, and `rank` (1..OPS_TOP) is bounded by construction
OPS_TOP = 10

# name -> (help, labels); the single list the exposition, dashboards and tests agree on
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    # Gauges of the latest run: each value is a measurement that can go up or down, so max/avg/
    # quantile_over_time/deriv work; a summary's _count/_sum would promise cumulative counters that rate() reads.
    # one name per quantile, not a `quantile` label: Prometheus reserves that label for summaries (promtool check metrics)
    "edgeq_latency_p50_seconds": ("Median on-device inference latency of the latest run's timed window.", BENCH_LABELS),
    "edgeq_latency_p90_seconds": ("90th percentile on-device inference latency of the latest run.", BENCH_LABELS),
    "edgeq_latency_p99_seconds": ("99th percentile on-device inference latency of the latest run.", BENCH_LABELS),
    "edgeq_latency_mean_seconds": ("Mean on-device inference latency of the latest run's timed window.", BENCH_LABELS),
    "edgeq_latency_floor_seconds": (
        "Fastest timed invoke over the latest run's sessions: what edgeq compare decides a latency regression on.",
        BENCH_LABELS,
    ),
    "edgeq_latency_timed_inferences": ("Inferences timed in the latest run (what the latency figures come from).", BENCH_LABELS),
    # DEPRECATED (kept so existing queries keep working; removal announced in docs/results-and-metrics.md#metric-changes):
    # a summary whose _count/_sum hold the latest run's values, not cumulative ones, so rate() over them is meaningless.
    "edgeq_latency_seconds": (
        "DEPRECATED, use edgeq_latency_p50_seconds (p90, p99) / edgeq_latency_mean_seconds: per-run summary.",
        BENCH_LABELS,
    ),
    "edgeq_init_seconds": ("Interpreter creation and tensor allocation time on the device.", BENCH_LABELS),
    "edgeq_first_inference_seconds": ("First (cold) inference time on the device.", BENCH_LABELS),
    "edgeq_peak_memory_bytes": ("Peak resident memory of the benchmark process on the device.", BENCH_LABELS),
    "edgeq_power_watts": ("Mean board power during the timed window.", BENCH_LABELS),
    "edgeq_energy_per_inference_joules": ("Energy per inference (mean power x mean latency).", BENCH_LABELS),
    # sessions: one series per benchmark, never per session (a session number or run id label would grow without bound)
    "edgeq_benchmark_sessions": ("Independent sessions (agent processes) the benchmark's figures come from.", BENCH_LABELS),
    "edgeq_latency_session_spread_ratio": (
        "Between-session spread: (max - min) / median of the session median latencies.",
        BENCH_LABELS,
    ),
    "edgeq_latency_session_stddev_seconds": ("Standard deviation of the session median latencies.", BENCH_LABELS),
    "edgeq_latency_p50_ci_lower_seconds": (
        "Lower bound of the interval of the median of session medians (exact order-statistic interval, its level "
        "in the run's results; runs recorded before it: 95% bootstrap).",
        BENCH_LABELS,
    ),
    "edgeq_latency_p50_ci_upper_seconds": (
        "Upper bound of the interval of the median of session medians (exact order-statistic interval, its level "
        "in the run's results; runs recorded before it: 95% bootstrap).",
        BENCH_LABELS,
    ),
    "edgeq_harness_floor_seconds": ("Invoke time of a no-op model on the device (the harness floor).", BENCH_LABELS),
    # board state: one series per benchmark and flag name (a fixed set), never per session
    "edgeq_bench_flagged": (
        "1 if a session of the benchmark was flagged"
        " (throttled, freq_drop, foreign_load, hot, cooldown_timeout, cpu_starved), else 0.",
        (*BENCH_LABELS, "flag"),
    ),
    "edgeq_latency_trend_ratio": (
        "Median latency of the last 10% of samples over the first 10% (median over sessions); > 1: slowed down.",
        BENCH_LABELS,
    ),
    "edgeq_board_temp_celsius": ("Hottest board temperature seen through the benchmark's sessions.", BENCH_LABELS),
    # benchmark.numeric_check: golden rows on the board vs this host, op by op (no run id label: one series per check)
    "edgeq_numeric_check_ok": (
        "1 if every op's output on the device is within the numeric check's tolerance of this host's, else 0.",
        ("pipeline", "device", "variant"),
    ),
    "edgeq_numeric_max_error": (
        "Largest op output error of the numeric check: quantization steps (unit=lsb) or relative to the host (unit=rel).",
        ("pipeline", "device", "variant", "unit"),
    ),
    # per-op profiles of the latest run (LiteRT CompiledModel with its profiler; docs/measurement.md)
    "edgeq_op_latency_seconds": (
        "Median of session medians of one of the OPS_TOP (10) slowest ops; op = node id and op type, rank 1 = slowest.",
        (*OPS_LABELS, "rank", "op"),
    ),
    "edgeq_op_invoke_seconds": ("Profiled Invoke p50 (median over sessions) the op times are part of.", OPS_LABELS),
    "edgeq_op_coverage_ratio": ("Sum of every op's p50 over the profiled Invoke p50 (about 0.85-1).", OPS_LABELS),
    "edgeq_op_top_share_ratio": ("Part of the profiled Invoke p50 the exported top ops account for.", OPS_LABELS),
    "edgeq_kernel_fingerprint_info": (
        "Kernel fingerprint of the latest profile (value 1): a new fingerprint means some op ran another kernel.",
        (*OPS_LABELS, "fingerprint", "runtime"),
    ),
    "edgeq_op_profile_supported": (
        "1 if the board profiled the variant, 0 if it cannot (tflite-runtime, Edge TPU, old glibc: see the report).",
        OPS_LABELS,
    ),
    "edgeq_device_up": ("1 if every benchmark on the device succeeded in the latest run, else 0.", ("pipeline", "device")),
    "edgeq_device_info": (
        "Board facts of the device (value 1).",
        ("pipeline", "device", "arch", "board_model", "cpu_model", "runtime", "runtime_version"),
    ),
    "edgeq_device_temperature_celsius": ("SoC temperature after the benchmark, where readable.", ("pipeline", "device")),
    "edgeq_model_size_bytes": ("Size of the .tflite artifact.", ("pipeline", "variant", "type")),
    "edgeq_model_size_ratio": ("Artifact size relative to the fp32 variant.", ("pipeline", "variant")),
    "edgeq_accuracy_ratio": (
        "Test accuracy of the variant measured through a TFLite interpreter (0..1).",
        ("pipeline", "variant"),
    ),
    "edgeq_accuracy_drop_ratio": ("fp32 accuracy minus this variant's accuracy (0..1).", ("pipeline", "variant")),
    "edgeq_accuracy_drop_budget_ratio": (
        "The max_accuracy_drop gate that applies to the variant (0..1).",
        ("pipeline", "variant"),
    ),
    "edgeq_gates_passed": ("1 if every validation gate of the variant passed, else 0.", ("pipeline", "variant")),
    "edgeq_stage_duration_seconds": (
        "Time spent in a pipeline stage in the latest run (0 when reused from cache).",
        ("pipeline", "stage", "variant"),
    ),
    "edgeq_stage_cached": ("1 if the stage output was reused from the cache.", ("pipeline", "stage", "variant")),
    "edgeq_run_duration_seconds": ("Wall time of the latest run.", ("pipeline",)),
    "edgeq_last_run_timestamp_seconds": ("When the latest run finished (Unix time).", ("pipeline",)),
    "edgeq_last_run_ok": ("1 if the latest run succeeded (all gates and boards), else 0.", ("pipeline",)),
    "edgeq_last_success_timestamp_seconds": ("When the last fully successful run finished (Unix time).", ("pipeline",)),
}


# exported live for existing queries, never backfilled (see docs/results-and-metrics.md#metric-changes)
LEGACY_METRICS = frozenset({"edgeq_latency_seconds"})

SESSION_METRICS = frozenset(
    {
        "edgeq_benchmark_sessions",
        "edgeq_latency_floor_seconds",  # results stored with session minima only (history schema 7)
        "edgeq_latency_session_spread_ratio",
        "edgeq_latency_session_stddev_seconds",
        "edgeq_latency_p50_ci_lower_seconds",
        "edgeq_latency_p50_ci_upper_seconds",
        "edgeq_harness_floor_seconds",
        "edgeq_numeric_check_ok",  # and runs without a numeric check export no empty numeric families
        "edgeq_numeric_max_error",
        "edgeq_bench_flagged",  # and results without board state export no empty board-state families
        "edgeq_latency_trend_ratio",
        "edgeq_board_temp_celsius",
    }
)


# runs without per-op profiles export no empty op families
OPS_METRICS = frozenset(
    {
        "edgeq_op_latency_seconds",
        "edgeq_op_invoke_seconds",
        "edgeq_op_coverage_ratio",
        "edgeq_op_top_share_ratio",
        "edgeq_kernel_fingerprint_info",
        "edgeq_op_profile_supported",
    }
)


def _families() -> dict[str, Any]:
    from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily

    kind = {"edgeq_latency_seconds": SummaryMetricFamily}
    return {
        name: kind.get(name, GaugeMetricFamily)(name, help_, labels=list(labels)) for name, (help_, labels) in METRICS.items()
    }


def _add_latency(fam: Any, labels: list[str], b: BenchmarkRow) -> None:
    from prometheus_client.samples import Sample

    names = dict(zip(BENCH_LABELS, labels, strict=True))
    for value, q, _ in _quantiles(b):
        fam.samples.append(Sample("edgeq_latency_seconds", {**names, "quantile": q}, value))
    if b.count and b.mean_s is not None:
        fam.samples.append(Sample("edgeq_latency_seconds_count", names, float(b.count)))
        fam.samples.append(Sample("edgeq_latency_seconds_sum", names, b.mean_s * b.count))


def _quantiles(b: BenchmarkRow) -> list[tuple[float, str, str]]:
    """(value, summary quantile label, gauge name) of each quantile the benchmark has."""
    q = ((b.p50_s, "0.5", "p50"), (b.p90_s, "0.9", "p90"), (b.p99_s, "0.99", "p99"))
    return [(v, label, f"edgeq_latency_{p}_seconds") for v, label, p in q if v is not None]


def _add_latency_gauges(fam: dict[str, Any], labels: list[str], b: BenchmarkRow) -> None:
    for value, _, name in _quantiles(b):
        fam[name].add_metric(labels, value)
    if b.mean_s is not None:
        fam["edgeq_latency_mean_seconds"].add_metric(labels, b.mean_s)
    if b.count:
        fam["edgeq_latency_timed_inferences"].add_metric(labels, float(b.count))


def _bench_families(fam: dict[str, Any], p: str, benches: tuple[BenchmarkRow, ...]) -> None:
    health: dict[str, int] = {}
    for b in benches:
        health[b.device] = health.get(b.device, 1) & int(b.ok)
        if not b.ok:
            continue
        lab = [p, b.device, b.variant, str(b.threads), b.arch or ""]
        _add_latency_gauges(fam, lab, b)
        _add_latency(fam["edgeq_latency_seconds"], lab, b)
        for name, value in (
            ("edgeq_init_seconds", b.init_s),
            ("edgeq_first_inference_seconds", b.first_invoke_s),
            ("edgeq_peak_memory_bytes", b.peak_rss_bytes),
            ("edgeq_power_watts", b.power_mean_w),
            ("edgeq_energy_per_inference_joules", b.energy_j),
            ("edgeq_benchmark_sessions", b.sessions),
            ("edgeq_latency_floor_seconds", min(b.session_mins) if b.session_mins else None),
            ("edgeq_latency_session_spread_ratio", b.spread),
            ("edgeq_latency_session_stddev_seconds", b.spread_std_s),
            ("edgeq_latency_p50_ci_lower_seconds", b.ci_low_s),
            ("edgeq_latency_p50_ci_upper_seconds", b.ci_high_s),
            ("edgeq_harness_floor_seconds", b.harness_floor_s),
            ("edgeq_latency_trend_ratio", b.trend),
            ("edgeq_board_temp_celsius", b.state_temp_max_c),
        ):
            if value is not None:
                fam[name].add_metric(lab, float(value))
        if b.flags is not None:  # recorded with board state: every known flag, 0 or 1, so a panel sees it clear
            for flag in FLAGS:
                fam["edgeq_bench_flagged"].add_metric([*lab, flag], float(flag in b.flags))
    seen_info = set()
    for b in benches:
        if b.device in seen_info or not b.ok:
            continue
        seen_info.add(b.device)
        info = [b.arch, b.board_model, b.cpu_model, b.runtime_name, b.runtime_version]
        fam["edgeq_device_info"].add_metric([p, b.device, *[x or "" for x in info]], 1)
        if b.temp_c is not None:
            fam["edgeq_device_temperature_celsius"].add_metric([p, b.device], b.temp_c)
    for dev, up in health.items():
        fam["edgeq_device_up"].add_metric([p, dev], up)


def _ops_families(fam: dict[str, Any], p: str, profiles: Sequence[OpProfile]) -> None:
    from edgeq.results.ops import top_ops

    for prof in profiles:
        lab = [p, prof.device, prof.variant, str(prof.threads)]
        if prof.kind == "failed":  # says nothing about the board's ability: no sample
            continue
        fam["edgeq_op_profile_supported"].add_metric(lab, float(prof.kind == "ok"))
        if prof.kind != "ok":
            continue
        top = top_ops(prof, OPS_TOP)
        for rank, o in enumerate(top, 1):
            fam["edgeq_op_latency_seconds"].add_metric([*lab, str(rank), f"{o.node} {o.op}"], o.p50_us * 1e-6)
        inv = prof.invoke.p50_us if prof.invoke else None
        if inv:
            fam["edgeq_op_invoke_seconds"].add_metric(lab, inv * 1e-6)
            fam["edgeq_op_top_share_ratio"].add_metric(lab, sum(o.p50_us for o in top) / inv)
        if prof.coverage is not None:
            fam["edgeq_op_coverage_ratio"].add_metric(lab, prof.coverage)
        if prof.fingerprint:
            fam["edgeq_kernel_fingerprint_info"].add_metric([*lab, prof.fingerprint, prof.runtime or ""], 1.0)


def run_families(run: StoredRun, last_success_ts: float | None, profiles: Sequence[OpProfile] = ()) -> list[Any]:
    """Metric families for one loaded run (query.load) of a pipeline and its per-op profiles. Pure: no I/O."""
    fam = _families()
    p = run.pipeline
    _bench_families(fam, p, run.benchmarks)
    _ops_families(fam, p, profiles)
    for v, val in run.validations.items():
        if val.size_bytes is not None:
            fam["edgeq_model_size_bytes"].add_metric([p, v, val.type or ""], val.size_bytes)
        for name, value in (
            ("edgeq_model_size_ratio", val.size_ratio),
            ("edgeq_accuracy_ratio", val.accuracy),
            ("edgeq_accuracy_drop_ratio", val.accuracy_drop),
            ("edgeq_accuracy_drop_budget_ratio", val.accuracy_drop_budget),
        ):
            if value is not None:
                fam[name].add_metric([p, v], value)
        if val.gates_passed is not None:
            fam["edgeq_gates_passed"].add_metric([p, v], int(val.gates_passed))
    for st in run.stages:
        fam["edgeq_stage_cached"].add_metric([p, st.stage, st.variant], int(st.cached))
        if st.seconds is not None:
            fam["edgeq_stage_duration_seconds"].add_metric([p, st.stage, st.variant], 0.0 if st.cached else st.seconds)
    for n in run.numeric or ():
        if n.kind is None:  # a check that could not run says nothing about the numbers
            fam["edgeq_numeric_check_ok"].add_metric([p, n.device, n.variant], int(n.ok))
        if n.worst_error is not None and n.worst_unit in ("lsb", "rel"):
            fam["edgeq_numeric_max_error"].add_metric([p, n.device, n.variant, n.worst_unit], n.worst_error)
    if run.wall_seconds is not None:
        fam["edgeq_run_duration_seconds"].add_metric([p], run.wall_seconds)
    fam["edgeq_last_run_timestamp_seconds"].add_metric([p], run.finished_ts or run.started_ts)
    fam["edgeq_last_run_ok"].add_metric([p], int(run.status == "ok"))
    if last_success_ts is not None:
        fam["edgeq_last_success_timestamp_seconds"].add_metric([p], last_success_ts)
    # runs stored before sessions existed export exactly what they did then: no empty session families
    return [f for f in fam.values() if f.samples or f.name not in SESSION_METRICS | OPS_METRICS]


def _merge(groups: list[list[Any]]) -> list[Any]:
    """One family per name across pipelines (an exposition must not repeat a metric name)."""
    out: dict[str, Any] = {}
    for fams in groups:
        for f in fams:
            if f.name in out:
                out[f.name].samples.extend(f.samples)
            else:
                out[f.name] = f
    return list(out.values())


class _Static:
    def __init__(self, families: list[Any]):
        self.families = families

    def collect(self) -> Iterator[Any]:
        return iter(self.families)


def registry_for(families: list[Any]) -> Any:
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Static(families))
    return reg


def run_registry(run_ref: str, db_path: Path | None = None) -> tuple[Any, StoredRun]:
    """(registry, run) for one stored run: what `metrics push` sends."""
    from edgeq.results import query

    with query.open_for_reading(db_path) as h:
        full = query.load(h, query.resolve(h, run_ref))
        fams = run_families(full, query.last_success_ts(h, full.pipeline), load_profiles(h, full.run_id))
        return registry_for(fams), full


def latest_families(db_path: Path | None = None) -> list[Any]:
    """The newest run of every pipeline in the history (what the exporter and the textfile show)."""
    from edgeq.results import query

    with query.open_for_reading(db_path) as h:
        return _merge(
            [
                run_families(query.load(h, r), query.last_success_ts(h, r.pipeline), load_profiles(h, r.run_id))
                for r in query.latest_per_pipeline(h)
            ]
        )


def exposition(registry: Any) -> bytes:
    from prometheus_client import generate_latest

    return generate_latest(registry)
