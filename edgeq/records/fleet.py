"""Fleet records: what a board's agent reports, what one board ends as, and what a fleet command returns.

Today's documents carry some keys only on some boards (a failed board has `kind` and `hint`, a deployed
one `action` and `current`; a failed benchmark has `error`, a good one `latency_ms`). `omit_if_unset`
names those keys: they are written when the producer set them (even to None) and left out otherwise,
so `to_json()` gives today's documents key for key, and `from_json(to_json())` gives them back.

Two groups:
- agent documents (`Agent*`, `BoardFacts`, `PowerReading`): the JSON a board's agent prints, read at one
  boundary (edgeq.fleet.agentdoc); a document of the wrong shape never gets past it;
- orchestrator records (`BoardOutcome`, `BoardHealth`, `BenchRun`, `FleetSummary`, `BenchResult`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import ConfigDict, StrictBool, StrictInt

from edgeq.records.base import Record
from edgeq.records.boardstate import AgentTrajectoryWindow, BoardState, TrajectoryWindow, Trend

Status = Literal["ok", "changed", "failed", "unreachable", "skipped"]
Action = Literal["deploy", "rollback", "check", "bench"]
STATUSES: tuple[Status, ...] = ("ok", "changed", "unreachable", "failed", "skipped")
FAILED: tuple[Status, ...] = ("failed", "unreachable")  # the statuses that count against --max-fail


class FleetRecord(Record):
    """A record whose optional keys appear only when set (see the module doc)."""

    model_config = ConfigDict(protected_namespaces=())

    omit_if_unset: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        for name in self.omit_if_unset - self.model_fields_set:
            out.pop(type(self).model_fields[name].alias or name, None)
        return out

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed; keys that were unset stay unset (and out of the JSON)."""
        return self._rebuild({k: getattr(self, k) for k in self.model_fields_set}, changes)


# ------------------------------------------------------------------------------------------------ board facts


class RuntimeInfo(Record):
    """The TFLite runtime the agent found: ai-edge-litert, tflite-runtime or tensorflow."""

    name: str | None = None
    version: str | None = None


class DelegateInfo(FleetRecord):
    requested: str | None = None
    used: str | None = None
    note: str | None = None

    omit_if_unset = frozenset({"used", "note"})


class ThermalZone(Record):
    zone: str | None = None
    type: str | None = None
    temp_c: float | None = None


class Throttled(FleetRecord):
    """`vcgencmd get_throttled` on a Raspberry Pi: raw "0x50005" and its bits."""

    raw: str | None = None
    flags: StrictInt | None = None
    error: str | None = None

    omit_if_unset = frozenset({"error"})


class BoardFacts(Record):
    """The environment recorded with every result. Every reading is best effort: None when unreadable."""

    hostname: str | None = None
    arch: str | None = None
    cpu_model: str | None = None
    board_model: str | None = None
    cores: StrictInt | None = None
    cores_available: StrictInt | None = None
    kernel: str | None = None
    os: str | None = None
    python: str | None = None
    numpy: str | None = None
    runtime: RuntimeInfo | None = None
    workdir: str | None = None
    free_bytes: StrictInt | None = None
    temp_c: float | None = None
    thermal_zones: tuple[ThermalZone, ...] = ()
    cpu_freq_khz: StrictInt | None = None
    cpu_governor: str | None = None
    throttled: Throttled | None = None


# ------------------------------------------------------------------------------------------------ power

_POWER_SUMMARY_KEYS = ("probe", "mean_w", "idle_w", "joules_per_inference", "joules_per_inference_above_idle", "samples", "error")


class PowerSummary(FleetRecord):
    """The power figures a manifest keeps per benchmark (the samples stay in the raw file)."""

    probe: str | None = None
    mean_w: float | None = None
    idle_w: float | None = None
    joules_per_inference: float | None = None
    joules_per_inference_above_idle: float | None = None
    samples: StrictInt | None = None
    error: str | None = None

    omit_if_unset = frozenset(_POWER_SUMMARY_KEYS)


class PowerReading(FleetRecord):
    """The agent's power document: sampled only inside the timed window, idle measured before it."""

    probe: str | None = None
    interval_s: float | None = None
    idle_s: float | None = None
    note: str | None = None
    error: str | None = None
    mean_w: float | None = None
    min_w: float | None = None
    max_w: float | None = None
    idle_w: float | None = None
    samples: StrictInt | None = None
    samples_w: tuple[float, ...] | None = None
    idle_samples: StrictInt | None = None
    read_errors: StrictInt | None = None
    first_error: str | None = None
    joules_per_inference: float | None = None
    joules_per_inference_above_idle: float | None = None

    omit_if_unset = frozenset(
        {"probe", "interval_s", "idle_s", "note", "error", "mean_w", "min_w", "max_w", "idle_w", "samples"}
        | {"samples_w", "idle_samples", "read_errors", "first_error", "joules_per_inference"}
        | {"joules_per_inference_above_idle"}
    )

    def summary(self) -> PowerSummary:
        return PowerSummary(**{k: getattr(self, k) for k in _POWER_SUMMARY_KEYS if k in self.model_fields_set})


# ------------------------------------------------------------------------------------------------ agent documents


class LatencyStats(Record):
    """Latency statistics over the timed runs, in the unit the holder's field name says (ms or s)."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None


class AgentLatency(LatencyStats):
    count: StrictInt


class AgentMemory(Record):
    vmhwm_before_init_bytes: StrictInt | None = None
    vmhwm_after_init_bytes: StrictInt | None = None
    vmhwm_after_runs_bytes: StrictInt | None = None


class AgentClock(Record):
    """The board's wall clock (epoch seconds) when the agent started and when it answered."""

    start: float
    end: float


class ClockOffset(Record):
    """The board's clock against this host's around one agent call (edgeq.fleet.clock): board - host, in seconds,
    known to within `within_s` (half the call's time spent outside the agent: process start, the connection)."""

    offset_s: float
    within_s: float


class AgentDoc(FleetRecord):
    """The envelope of every successful agent document.

    Read only at edgeq.fleet.agentdoc, which keeps the keys of a newer agent (they travel on untouched) and adds
    `clock_offset` (this host's measure of the board's `clock`)."""

    ok: Literal[True] = True
    protocol: StrictInt | None = None
    command: str | None = None
    clock: AgentClock | None = None
    clock_offset: ClockOffset | None = None

    omit_if_unset = frozenset({"protocol", "command", "clock", "clock_offset"})


class AgentFacts(AgentDoc):
    board: BoardFacts


class RollbackNote(Record):
    """The rollback that made a model's current version current (W/models/NAME/rollback.json on the board)."""

    restored: str
    replaced: str | None = None
    at: str | None = None  # the board's clock


class AgentStatus(AgentDoc):
    name: str | None = None
    current: str | None
    previous: str | None = None
    have: StrictBool | tuple[str, ...] | None = None
    blobs: tuple[str, ...] = ()
    free_bytes: StrictInt | None = None
    lock: dict[str, Any] | None = None  # {"held": bool, "holder": {pid, command, since, ...}, "holder_alive"}
    rolled_back: RollbackNote | None = None  # current came from this rollback (None: from an install)

    omit_if_unset = AgentDoc.omit_if_unset | {"lock", "rolled_back"}


class AgentSwitch(AgentDoc):
    """What install and rollback report: the version now current and the one before it."""

    name: str | None = None
    changed: StrictBool | None = None
    current: str | None
    previous: str | None = None
    load_seconds: float | None = None
    pruned: tuple[str, ...] | None = None
    free_bytes: StrictInt | None = None
    runtime: RuntimeInfo | None = None

    omit_if_unset = AgentDoc.omit_if_unset | {"pruned"}


class HarnessFloor(FleetRecord):
    """The invoke time of a near no-op model, measured by the agent after each bench's timed window."""

    p50_s: float | None = None
    min_s: float | None = None
    runs: StrictInt | None = None
    error: str | None = None

    omit_if_unset = frozenset({"p50_s", "min_s", "runs", "error"})


class AgentBench(AgentDoc):
    """One benchmark as the agent measured it; kept whole beside the manifest (the raw samples).

    A benchmark of K sessions keeps the first session's document with every session's samples pooled
    (in session order), the overall figures in `latency_s`, and one summary per session in `sessions`."""

    model: dict[str, Any] | None = None
    runtime: RuntimeInfo | None = None
    threads: StrictInt | None = None
    delegate: DelegateInfo | None = None
    inputs_source: str | None = None
    started_at: str | None = None
    init_seconds: float | None = None
    first_invoke_seconds: float | None = None
    warmup_runs: StrictInt | None = None
    runs_requested: StrictInt | None = None
    min_seconds: float | None = None
    stopped_by: str | None = None
    timed_seconds: float | None = None
    window_seconds: float | None = None
    latency_s: AgentLatency
    samples_s: tuple[float, ...]
    samples_stride: StrictInt = 1
    memory: AgentMemory | None = None
    power: PowerReading | None = None
    board: BoardFacts | None = None
    board_after: dict[str, Any] | None = None
    harness_floor: HarnessFloor | None = None
    pid: StrictInt | None = None
    sessions: tuple[dict[str, Any], ...] | None = None
    state: BoardState | None = None  # board state before, during and after the timed window; the flags
    trend: Trend | None = None
    trajectory: tuple[AgentTrajectoryWindow, ...] | None = None

    omit_if_unset = AgentDoc.omit_if_unset | {"harness_floor", "pid", "sessions", "state", "trend", "trajectory"}


class AgentPredict(AgentDoc):
    predictions: tuple[StrictInt, ...]
    count: StrictInt | None = None
    batch_used: StrictInt | None = None
    seconds: float | None = None
    model: dict[str, Any] | None = None
    runtime: RuntimeInfo | None = None
    delegate: DelegateInfo | None = None


# ------------------------------------------------------------------------------------------------ orchestrator side


class BenchSession(FleetRecord):
    """One session of a benchmark (a fresh agent process and interpreter): its own figures, in ms."""

    session: StrictInt
    p50: float
    p90: float
    p99: float
    mean: float
    count: StrictInt
    started_at: str | None = None  # this host's clock (a board's clock may be off: clock_offset_s)
    harness_floor_ms: float | None = None
    min: float | None = None  # the session's fastest timed invoke: what compare decides on (results.stats.floor_ratio_ci)
    flags: tuple[str, ...] = ()  # edgeq.records.boardstate: throttled, freq_drop, foreign_load, hot, cooldown_timeout
    trend: float | None = None  # last 10 % median / first 10 % median
    temp_max_c: float | None = None
    cooldown_s: float | None = None  # how long the cool-down before this session waited
    clock_offset_s: float | None = None  # the board's clock - this host's during the session (edgeq.fleet.clock)

    omit_if_unset = frozenset(
        {"started_at", "harness_floor_ms", "min", "flags", "trend", "temp_max_c", "cooldown_s", "clock_offset_s"}
    )


class MedianCI(Record):
    """The interval of the median of session medians (ms) and its level: the exact order-statistic interval
    (edgeq.results.stats.median_interval; level e.g. 0.9375 for 5 sessions) since issue 24; older records hold a
    percentile bootstrap stated at 0.95 (these defaults, so records without the two fields read as they were)."""

    low: float
    high: float
    level: float = 0.95
    method: str = "bootstrap of session medians"


class CiSizing(Record):
    """How a self-sizing benchmark (`--ci-target`, benchmark.ci_target) ended: `target_met` when the interval's
    half-width / median fell within `target`, `budget_exhausted` when max_sessions or max_seconds ran out first;
    `half_width` the relative half-width reached (None when under two sessions succeeded)."""

    target: float
    sessions_run: StrictInt
    stop: str
    half_width: float | None = None


# board state: the union of the sessions' flags, the median trend, the latency per window (sustained mode),
# the hottest reading, and notes (a governor that could not be set, a cool-down without thermal zones)
STATE_KEYS = ("flags", "trend", "trajectory_ms", "temp_max_c", "notes")


_MEASURED = ("latency_ms", "count", "init_ms", "first_invoke_ms", "peak_rss_bytes", "runtime", "delegate")


class BenchFigures(FleetRecord):
    """What one benchmark measured, in ms: a board's bench call (`BenchRun`) and its manifest row (`BenchResult`)
    both carry these, and a row takes them from its run with `figures()`. A key left unset stays out of the JSON.

    JSON key order (as the documents always had it): the record's first `lead` own fields (which board, variant,
    threads; ok), the measured figures, its other own fields, then the sessions and the board's state."""

    lead: ClassVar[int] = 0

    latency_ms: LatencyStats | None = None
    count: StrictInt | None = None
    init_ms: float | None = None
    first_invoke_ms: float | None = None
    peak_rss_bytes: StrictInt | None = None
    runtime: RuntimeInfo | None = None
    delegate: DelegateInfo | None = None
    # sessions: latency_ms.p50 is then the median of session medians, p90/p99 pooled over all samples
    sessions: tuple[BenchSession, ...] = ()
    spread: float | None = None  # (max - min) / median of the session medians
    spread_std_ms: float | None = None  # standard deviation of the session medians
    ci_ms: MedianCI | None = None
    ci_sizing: CiSizing | None = None  # set only by a self-sizing benchmark (--ci-target)
    harness_floor_ms: float | None = None  # the no-op model's invoke time (median over sessions)
    flags: tuple[str, ...] = ()
    trend: float | None = None
    trajectory_ms: tuple[TrajectoryWindow, ...] = ()
    temp_max_c: float | None = None
    notes: tuple[str, ...] = ()

    omit_if_unset = frozenset(
        {*_MEASURED, "sessions", "spread", "spread_std_ms", "ci_ms", "ci_sizing", "harness_floor_ms", *STATE_KEYS}
    )

    def figures(self) -> dict[str, Any]:
        """The figures this record has (set ones only), as keyword arguments for the other record."""
        return {k: getattr(self, k) for k in BenchFigures.model_fields if k in self.model_fields_set}

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        own = [k for k in type(self).model_fields if k not in BenchFigures.model_fields]
        later = [k for k in BenchFigures.model_fields if k not in _MEASURED]
        order = [*own[: self.lead], *_MEASURED, *own[self.lead :], *later]
        return {**{k: out[k] for k in order if k in out}, **{k: v for k, v in out.items() if k not in order}}


class BenchRun(BenchFigures):
    """One `bench` call on one board at one thread count: the figures, or why it failed."""

    lead = 2
    threads: StrictInt
    ok: bool
    power: PowerReading | None = None
    raw: AgentBench | None = None
    kind: str | None = None
    error: str | None = None
    hint: str | None = None

    omit_if_unset = BenchFigures.omit_if_unset | {"power", "raw", "kind", "error", "hint"}


class BoardOutcome(FleetRecord):
    """How one board ended in deploy, rollback or bench (check: `BoardHealth`).

    A failure keeps the agent's details (holder of a lock, expected/actual hash, op, ...) in `details`,
    written into the JSON as keys of their own after the declared ones, as they always were.
    """

    device: str
    address: str | None = None
    status: Status
    # deploy and rollback
    action: str | None = None
    previous: str | None = None
    sha256: str | None = None
    model_bytes: StrictInt | None = None
    current: str | None = None
    # bench: what deploying first did, and one run per thread count
    deploy: str | None = None
    results: tuple[BenchRun, ...] = ()
    kind: str | None = None
    error: str | None = None
    hint: str | None = None
    bytes_uploaded: StrictInt = 0
    seconds: float = 0.0
    details: dict[str, Any] = {}  # what the board said about its failure, beyond the fields above

    omit_if_unset = frozenset(
        {"action", "previous", "sha256", "model_bytes", "current", "deploy", "results", "kind", "hint", "bytes_uploaded"}
    )

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        for k, v in out.pop("details", {}).items():
            out.setdefault(k, v)
        return out

    @property
    def succeeded(self) -> bool:
        return self.status in ("ok", "changed")


class BoardHealth(BoardOutcome):
    """`devices check` for one board: reachable, healthy, and the facts the table shows."""

    omit_if_none = frozenset({"route"})

    transport: str | None = None
    route: str | None = None  # "via bastion" for a board behind jump hosts
    reachable: bool
    healthy: bool
    arch: str | None = None
    cpu: str | None = None
    board_model: str | None = None
    cores: StrictInt | None = None
    kernel: str | None = None
    os: str | None = None
    python: str | None = None
    numpy: str | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    free_bytes: StrictInt | None = None
    temperature_c: float | None = None
    throttled: str | None = None
    clock_offset_s: float | None = None  # the board's clock - this host's (edgeq.fleet.clock)
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # healthy, but worth fixing (a chatty login shell, a clock off by a day)
    facts: BoardFacts | None = None

    omit_if_unset = BoardOutcome.omit_if_unset | {"facts", "warnings", "clock_offset_s"}


class FleetCounts(Record):
    ok: int = 0
    changed: int = 0
    unreachable: int = 0
    failed: int = 0
    skipped: int = 0


class Rollout(Record):
    """run_fleet's result: one outcome per device (in inventory order) and how the batches went."""

    batches: tuple[tuple[str, ...], ...]
    stopped_after_batch: int | None
    counts: FleetCounts
    devices: tuple[BoardOutcome, ...]


class FleetSummary(FleetRecord):
    """What deploy, rollback, check and bench return (their --json document)."""

    ok: bool
    action: Action
    artifact: str | None = None
    name: str | None = None
    sha256: str | None = None
    size_bytes: StrictInt | None = None
    runs: StrictInt | None = None
    warmup: StrictInt | None = None
    min_seconds: float | None = None
    threads: tuple[int, ...] | None = None
    sessions: StrictInt | None = None  # bench: sessions per device x threads (runs, min_seconds: totals over them)
    batches: tuple[tuple[str, ...], ...] = ()
    stopped_after_batch: int | None = None
    counts: FleetCounts | None = None
    devices: tuple[BoardOutcome, ...]
    bytes_uploaded: StrictInt = 0
    seconds: float
    dry_run: bool = False  # nothing was changed: the records say what would be (bytes_uploaded: would send)

    omit_if_unset = frozenset(
        {"artifact", "name", "sha256", "size_bytes", "runs", "warmup", "min_seconds", "threads", "sessions", "batches"}
        | {"stopped_after_batch", "counts", "bytes_uploaded", "dry_run"}
    )

    @property
    def failed(self) -> tuple[BoardOutcome, ...]:
        """The boards that did not succeed (failed, unreachable, skipped)."""
        return tuple(d for d in self.devices if not d.succeeded)


# ------------------------------------------------------------------------------------------------ manifest rows


class BenchResult(BenchFigures):
    """One manifest `benchmarks` row: device x variant x threads (threads None: the board never ran one)."""

    lead = 5
    device: str
    variant: str
    threads: StrictInt | None
    ok: bool
    status: Status | None = None
    power: PowerSummary | None = None
    board: BoardFacts | None = None
    raw: str | None = None  # the raw-samples file (the agent's whole bench document) beside the manifest
    error: str | None = None
    kind: str | None = None
    hint: str | None = None

    omit_if_unset = BenchFigures.omit_if_unset | {"status", "power", "board", "raw", "error", "kind", "hint"}


class AccuracyCheck(FleetRecord):
    """One manifest `benchmark_accuracy` row: the board's accuracy on the test split against validate's."""

    device: str
    variant: str
    ok: bool
    board_accuracy: float | None = None
    validate_accuracy: float | None = None
    accuracy_delta: float | None = None
    tolerance: float | None = None
    error: str | None = None

    omit_if_unset = frozenset({"board_accuracy", "validate_accuracy", "accuracy_delta", "tolerance"})
