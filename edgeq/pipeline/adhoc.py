"""An `edgeq bench` result as an ad hoc run in the history.

No pipeline ran: the run is filed under the model's name (pipeline = variant = `--name`, the artifact's stem by
default), marked `adhoc`, so `edgeq history` lists it and `edgeq compare --adhoc` compares two of them, while
nightly comparisons, baselines and the Prometheus exports keep reading pipeline runs only.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

from edgeq.fleet import bench_result, unmeasured_result
from edgeq.records.fleet import BenchResult, FleetSummary
from edgeq.records.ops import OpsReport
from edgeq.records.run import RunManifest, RunStages
from edgeq.results.record import RawSamples, Recordable, RunParams, record_run


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def _rows(res: FleetSummary, variant: str) -> list[tuple[BenchResult, RawSamples | None]]:
    rows: list[tuple[BenchResult, RawSamples | None]] = []
    for d in res.devices:
        if not d.results:
            rows.append((unmeasured_result(d, variant), None))
        for r in d.results:
            raw = (
                RawSamples(samples_s=r.raw.samples_s, samples_stride=r.raw.samples_stride) if r.ok and r.raw is not None else None
            )
            rows.append((bench_result(d.device, variant, r, None), raw))
    return rows


def bench_recordable(res: FleetSummary, started_ts: float, finished_ts: float) -> Recordable:
    name = res.name or Path(res.artifact or "model").stem
    run_id = dt.datetime.fromtimestamp(started_ts, dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    rows = _rows(res, name)
    manifest = RunManifest(
        run_id=run_id,
        pipeline=name,
        pipeline_file=str(res.artifact or ""),
        pipeline_sha256=res.sha256 or "",
        status="ok" if res.ok else "fleet_failed",
        started=_iso(started_ts),
        finished=_iso(finished_ts),
        wall_seconds=round(finished_ts - started_ts, 3),
        params={"bench": {"runs": res.runs, "warmup": res.warmup, "sessions": res.sessions, "threads": res.threads}},
        versions={},
        inputs={},
        stages=RunStages(),
        variants={},
        benchmarks=tuple(b for b, _ in rows),
        fleet_failed=tuple(f"benchmark on {d.device}" for d in res.failed),
        adhoc=True,
    )
    return Recordable(manifest=manifest, benchmarks=tuple(rows), params=RunParams())


def record_bench(
    res: FleetSummary, started_ts: float, finished_ts: float, db_path: Path | None = None, *, ops: OpsReport | None = None
) -> str:
    """Store the bench as an ad hoc run, with its per-op profiles (`--ops`); returns its run id (StoreError if the
    history is unusable)."""
    run_id = record_run(bench_recordable(res, started_ts, finished_ts), db_path)
    if ops is not None and ops.profiles:
        from edgeq.results.opstore import record_profiles

        record_profiles(run_id, ops.profiles, db_path)
    return run_id
