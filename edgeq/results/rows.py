"""What reading the history returns: one frozen record per row kind, each column named once, here.

`to_json()` of these records is the `edgeq history --json` document: the columns of each table in
their order, JSON columns decoded, `runtime_name`/`runtime_version` of a run as one `runtime` object.
Board facts, the delegate and the throttling state keep exactly the keys the board reported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Self

from edgeq.records import Record
from edgeq.records.fleet import BoardFacts, DelegateInfo, RuntimeInfo, Throttled
from edgeq.results.numeric import NumericRow
from edgeq.results.quality import QualitySummary


def as_given(rec: Record | None) -> dict[str, Any] | None:
    """A record's JSON with only the keys its source had (a board's facts as it reported them)."""
    return None if rec is None else rec.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _json(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


class RunRow(Record):
    """A `runs` row: one recorded run of a pipeline."""

    run_id: str
    pipeline: str
    pipeline_file: str | None = None
    pipeline_sha256: str | None = None
    status: str
    started: str | None = None
    finished: str | None = None
    started_ts: float
    finished_ts: float | None = None
    wall_seconds: float | None = None
    error: str | None = None
    versions: dict[str, Any] | None = None
    gates_failed: tuple[str, ...] | None = None
    fleet_failed: tuple[str, ...] | None = None
    manifest_path: str | None = None
    runtime: RuntimeInfo
    adhoc: bool | None = None  # True: `edgeq bench` by hand; None (absent from JSON) for pipeline runs, as before

    omit_if_none = frozenset({"adhoc"})

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        d = {k: v for k, v in row.items() if k not in ("runtime_name", "runtime_version", "recorded_ts", "adhoc")}
        if row.get("adhoc"):
            d["adhoc"] = True
        for k in ("versions", "gates_failed", "fleet_failed"):
            d[k] = _json(d[k], None)
        return cls.from_stored({**d, "runtime": {"name": row["runtime_name"], "version": row["runtime_version"]}})


class ValidationRow(Record):
    """A `validations` row: one variant's artifact and its accuracy through a TFLite interpreter."""

    type: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    accuracy: float | None = None
    test_samples: int | None = None
    accuracy_drop: float | None = None  # fp32 accuracy minus this variant's (0..1)
    accuracy_drop_budget: float | None = None  # the max_accuracy_drop gate that applied, if any
    size_ratio: float | None = None
    gates_passed: bool | None = None
    gates_failed: tuple[str, ...] = ()
    quality: QualitySummary = QualitySummary()

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        d = {k: v for k, v in row.items() if k not in ("run_id", "variant")}
        d["gates_failed"] = _json(d["gates_failed"], [])
        d["quality"] = _json(d.get("quality"), {})  # a version-1 database has no quality column
        return cls.from_stored(d)


class SessionRow(Record):
    """A `benchmark_sessions` row: one session (a fresh agent process and interpreter) of a benchmark."""

    session: int
    p50_s: float | None = None
    p90_s: float | None = None
    p99_s: float | None = None
    mean_s: float | None = None
    count: int | None = None
    started: str | None = None
    harness_floor_s: float | None = None
    min_s: float | None = None  # the session's fastest timed invoke (history schema 7; None in older rows)

    omit_if_none = frozenset({"min_s"})  # documents of older rows stay as they were


_SESSION_COLUMNS = ("sessions", "spread", "spread_std_s", "ci_low_s", "ci_high_s", "ci_level", "harness_floor_s")
_STATE_COLUMNS = ("flags", "trend", "state_temp_max_c", "trajectory_s", "notes", "session_state")


class BenchmarkRow(Record):
    """A `benchmarks` row: device x variant x threads, latency in seconds; `samples_s` only when asked for."""

    id: int
    device: str
    variant: str
    threads: int | None = None
    ok: bool
    error: str | None = None
    kind: str | None = None
    p50_s: float | None = None
    p90_s: float | None = None
    p99_s: float | None = None
    mean_s: float | None = None
    std_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None
    count: int | None = None
    init_s: float | None = None
    first_invoke_s: float | None = None
    peak_rss_bytes: int | None = None
    runtime_name: str | None = None
    runtime_version: str | None = None
    delegate: DelegateInfo | None = None
    power_probe: str | None = None
    power_mean_w: float | None = None
    power_idle_w: float | None = None
    energy_j: float | None = None  # joules per inference (mean power x mean latency)
    arch: str | None = None
    board_model: str | None = None
    cpu_model: str | None = None
    hostname: str | None = None
    temp_c: float | None = None
    throttled: Throttled | None = None
    board: BoardFacts = BoardFacts()
    samples_stride: int | None = None  # the agent kept every n-th sample (1 = all)
    raw_path: str | None = None
    # benchmark_session_stats (None for results stored before sessions existed: one session)
    sessions: int | None = None
    spread: float | None = None  # (max - min) / median of the session medians
    spread_std_s: float | None = None
    ci_low_s: float | None = None  # bootstrap interval of the median of session medians
    ci_high_s: float | None = None
    ci_level: float | None = None
    harness_floor_s: float | None = None
    per_session: tuple[SessionRow, ...] | None = None
    samples_s: tuple[float, ...] | None = None
    # benchmark_state (None for results stored before board state existed)
    flags: tuple[str, ...] | None = None
    trend: float | None = None
    state_temp_max_c: float | None = None
    trajectory_s: tuple[float, ...] | None = None
    notes: tuple[str, ...] | None = None
    session_state: tuple[dict[str, Any], ...] | None = None

    omit_if_none = frozenset({"samples_s", "per_session", *_SESSION_COLUMNS, *_STATE_COLUMNS})

    @property
    def session_mins(self) -> list[float]:
        """The sessions' fastest invokes (seconds); empty unless every session has one (history schema 7)."""
        per = self.per_session or ()
        mins = [s.min_s for s in per if s.min_s is not None]
        return mins if len(mins) == len(per) else []

    @property
    def session_p50s(self) -> list[float]:
        """The session medians (seconds); empty for a result stored before sessions existed."""
        return [s.p50_s for s in self.per_session or () if s.p50_s is not None]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        d = {k: v for k, v in row.items() if k != "run_id"}
        for k, default in (("board", {}), ("delegate", None), ("throttled", None)):
            d[k] = _json(d[k], default)
        for k in ("flags", "trajectory_s", "notes", "session_state"):
            d[k] = _json(d.get(k), None)
        return cls.from_stored(d)

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        for k in ("delegate", "throttled", "board"):
            out[k] = as_given(getattr(self, k))
        return out

    @property
    def key(self) -> tuple[str, str, int | None]:
        return (self.device, self.variant, self.threads)


class StageRow(Record):
    """A `stages` row: how long a stage took for a variant ("" for train), or that the cache answered."""

    stage: str
    variant: str
    cached: bool
    seconds: float | None = None


class StoredRun(RunRow):
    """A run with its validations (by variant), benchmarks and stage durations: what history/compare/report read."""

    validations: dict[str, ValidationRow] = {}
    benchmarks: tuple[BenchmarkRow, ...] = ()
    stages: tuple[StageRow, ...] = ()
    numeric: tuple[NumericRow, ...] | None = None  # benchmark.numeric_check: one per variant x board (else None)

    omit_if_none = frozenset({"numeric", "adhoc"})
