"""Pieces of bench/drift_bench.py and bench/repeat_bench.py: a cgroup v1 CPU quota that slows a board's processes,
models whose compute differs by a known factor, one session on a farm board, and the two ways of comparing.

Drift is real: the sshd listener of a farm board is moved into a cgroup with `cpu.cfs_quota_us` set, so every
session it forks (and the agent under it) runs under the quota; moving it back ends the drift. The period is
1 ms so an invoke of a few ms is slowed evenly (with a 100 ms period an invoke would either run at full speed or
wait out a throttle: the median would hardly move and only the tail would).
"""

from __future__ import annotations

import os
from pathlib import Path

from edgeq import fleet
from edgeq.records.fleet import BenchRun
from edgeq.results.baseline import BASELINE_SUFFIX
from edgeq.results.compare import compare
from edgeq.results.rows import BenchmarkRow, SessionRow, StoredRun

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")


class BoardGroup:
    """The board's cgroup v1 cpu groups: `name` with a high cpu.shares (this host is shared with other work; a real
    board is not, so the board's processes get the CPU first, as on a board of their own), and `name`/drift, the
    same plus `cpu.cfs_quota_us` = `quota_us` per `period_us`. `slow(pid)` moves a process into the drift group,
    `steady(pid)` back; a process's later children inherit its group."""

    def __init__(self, name: str, period_us: int, quota_us: int, shares: int = 262144):
        self.dir = CGROUP_CPU / name
        self.drift = self.dir / "drift"
        self.drift.mkdir(parents=True, exist_ok=True)
        (self.dir / "cpu.shares").write_text(str(shares))
        (self.drift / "cpu.shares").write_text(str(shares))
        self.set_quota(period_us, quota_us)

    def set_quota(self, period_us: int, quota_us: int) -> None:
        (self.drift / "cpu.cfs_quota_us").write_text("-1")
        (self.drift / "cpu.cfs_period_us").write_text(str(period_us))
        (self.drift / "cpu.cfs_quota_us").write_text(str(quota_us))

    def steady(self, pid: int) -> None:
        (self.dir / "cgroup.procs").write_text(str(pid))

    def slow(self, pid: int) -> None:
        (self.drift / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        for g in (self.drift, self.dir):
            for pid in (g / "cgroup.procs").read_text().split():
                try:
                    (CGROUP_CPU / "cgroup.procs").write_text(pid)
                except OSError:
                    pass  # gone meanwhile
        os.rmdir(self.drift)
        os.rmdir(self.dir)


def stacked_dense(out: Path, layers: int, width: int = 256, rows: int = 48) -> Path:
    """An fp32 model of `layers` Dense(width) applied to `rows` rows: compute is proportional to `layers`
    (rows x width x width MACs each), so 23 layers really do 15 % more work than 20."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(7)
    inp = tf.keras.Input((rows, width))
    x = inp
    for _ in range(layers):
        x = tf.keras.layers.Dense(width, activation="relu")(x)
    out.write_bytes(tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inp, x)).convert())
    return out


def one_session(inv, board: str, artifact: Path, name: str, runs: int, seconds: float) -> BenchRun:
    """One session (a fresh SSH connection, agent and interpreter) of `artifact` on `board`."""
    res = fleet.bench(inv, [board], artifact, name=name, runs=runs, min_seconds=seconds, warmup=5, sessions=1)
    d = res.devices[0]
    if not d.results or not d.results[0].ok:
        raise SystemExit(f"bench on {board} failed: {d.error or d.results}")
    return d.results[0]


def _row(variant: str, run: BenchRun, *, sessions: bool, floors: bool = True) -> BenchmarkRow:
    """What the history would hold for `run` (p50 etc. in seconds). sessions=False: one session as stored before
    sessions existed, so compare falls back to raw-sample Mann-Whitney + ratio. floors=False: sessions as stored
    before history schema 7 (no session minima), so compare decides on the median of session medians."""
    lat = run.latency_ms
    assert lat is not None and run.raw is not None  # noqa: S101 - one_session checked ok
    per = tuple(
        SessionRow(
            session=s.session,
            p50_s=s.p50 / 1000.0,
            count=s.count,
            min_s=s.min / 1000.0 if floors and s.min is not None else None,
        )
        for s in run.sessions
    )
    return BenchmarkRow(
        id=0,
        device="b",
        variant=variant,
        threads=run.threads,
        ok=True,
        p50_s=lat.p50 / 1000.0,
        p90_s=lat.p90 / 1000.0,
        count=run.count,
        sessions=len(per) if sessions else None,
        per_session=per if sessions else None,
        samples_s=tuple(run.raw.samples_s),
    )


def _stored(run_id: str, *rows: BenchmarkRow) -> StoredRun:
    doc = {"run_id": run_id, "pipeline": "drift", "status": "ok", "started_ts": 0.0, "runtime": {}}
    return StoredRun.from_json({**doc, "benchmarks": [r.to_json() for r in rows]})


def verdict(base: BenchRun, cand: BenchRun, *, sessions: bool, rerun: bool = False, floors: bool = True) -> dict:
    """edgeq.results.compare on the two sides: regression or not, the ratio, the interval or p-value.

    rerun: the base is given as a rerun baseline of the candidate's run (variant "m@baseline", measured in the
    same interleaved sessions), as `edgeq run --rerun-baseline` stores it; else as a run of its own."""
    b, c = _row("m", base, sessions=sessions, floors=floors), _row("m", cand, sessions=sessions, floors=floors)
    if rerun:
        cmp = compare(_stored("then", c), _stored("now", c, b.replace(variant="m" + BASELINE_SUFFIX)))
    else:
        cmp = compare(_stored("base", b), _stored("cand", c))
    lat = cmp.latency[0]
    return {
        "regression": lat.regression,
        "ratio": lat.ratio,
        "ci": (lat.ratio_ci_low, lat.ratio_ci_high),
        "floor_ratio": lat.floor_ratio,
        "floor_ci": (lat.floor_ci_low, lat.floor_ci_high),
        "p": lat.p_value,
        "test": lat.test,
    }


def merged(runs: list[BenchRun]) -> BenchRun:
    return fleet.merge_sessions(runs)


def median_ms(run: BenchRun) -> float:
    assert run.latency_ms is not None  # noqa: S101
    return run.latency_ms.p50


def min_ms(run: BenchRun) -> float:
    """The session's fastest timed invoke (the agent's exact minimum, not of the kept samples)."""
    assert run.raw is not None and run.raw.latency_s.min is not None  # noqa: S101
    return run.raw.latency_s.min * 1000.0


def quantile_ms(run: BenchRun, q: float) -> float:
    """The q-th percentile of the session's kept samples."""
    import numpy as np

    assert run.raw is not None  # noqa: S101
    return float(np.percentile(run.raw.samples_s, q)) * 1000.0
