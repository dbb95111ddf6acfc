"""Per-op timing records: where an inference's time goes (`edgeq bench --ops`, `edgeq compare --ops`).

One OpProfile per board x model x threads, aggregated on the host from K `profile` sessions of the agent
(LiteRT's CompiledModel and its profiler: docs/measurement.md). Times are microseconds. A row's headline is the
median of its session medians, with the bootstrap interval of that median (as a benchmark's latency).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from edgeq.records.base import Record

ProfileKind = Literal["ok", "unsupported", "failed"]
Mapping_ = Literal["exact", "guess", "none"]


class OpRef(Record):
    """The model op a profiled row stands for: its index in the model's op list and its builtin name."""

    index: int
    op: str


class OpSession(Record):
    """One op's figures in one profiling session (every profiled run of that agent process)."""

    session: int
    p50_us: float
    p90_us: float
    count: int


class OpStat(Record):
    """One op over the sessions. `node` is the id rows are matched by across runs: `s<section>/<n>` for the n-th
    XNNPACK operator of delegated section <section>, `op<index>` for an op the interpreter ran itself (the
    model's op index; `op<subgraph>:<index>` outside the main subgraph)."""

    omit_if_none: ClassVar[frozenset[str]] = frozenset({"section"})

    node: str
    source: Literal["xnnpack", "tflite"]
    section: int | None = None
    index: int
    op: str
    kernel: str
    maps_to: OpRef | None = None
    mapping: Mapping_ = "none"
    sessions: tuple[OpSession, ...] = ()
    p50_us: float
    ci_low_us: float | None = None
    ci_high_us: float | None = None


class SessionTiming(Record):
    """A whole-run timing over sessions: the median of the session p50s, its interval, and each session's p50."""

    p50_us: float
    ci_low_us: float | None = None
    ci_high_us: float | None = None
    sessions_us: tuple[float, ...] = ()


class OpProfile(Record):
    """Where one board's inference time goes for one model and thread count.

    kind "unsupported": the board cannot profile (reason, fix: nothing measured, exit code unchanged);
    "failed": no profiling session succeeded (kind_error, error, hint as a fleet failure). `coverage` is the sum of
    the rows' p50 over the profiled Invoke p50; `overhead_us` the profiled run minus the unprofiled one (medians
    over sessions); `interpreter_p50_us` the latency sessions' p50 of the same bench (the Interpreter path).
    `fingerprint` hashes the node -> (op, kernel) map in `kernels` (a kernel change, e.g. a silent float fallback,
    changes it)."""

    omit_if_none: ClassVar[frozenset[str]] = frozenset({"reason", "fix", "error", "hint", "error_kind"})

    device: str
    variant: str
    threads: int
    kind: ProfileKind
    sessions: int = 0
    failed_sessions: int = 0
    reason: str | None = None
    fix: str | None = None
    error_kind: str | None = None
    error: str | None = None
    hint: str | None = None
    runtime: str | None = None
    invoke: SessionTiming | None = None
    unprofiled: SessionTiming | None = None
    interpreter_p50_us: float | None = None
    overhead_us: float | None = None
    coverage: float | None = None
    coverage_unprofiled: float | None = None
    fingerprint: str | None = None
    kernels: dict[str, str] = {}
    ops: tuple[OpStat, ...] = ()


class OpsReport(Record):
    """The per-op profiles of one `edgeq bench --ops` (or a pipeline's benchmark stage with `ops: true`)."""

    sessions: int
    runs: int
    profiles: tuple[OpProfile, ...] = ()


class OpChange(Record):
    """One op present in both runs: overall p50s, their ratio (candidate / base) and its bootstrap interval.
    `flagged`: the interval excludes 1 and the ratio passes the threshold; `share` is the op's part of the whole
    slowdown (its p50 delta / the Invoke p50 delta; None when Invoke did not get slower)."""

    node: str
    op: str
    model_op: str | None = None  # "<index> <name>" of the model op the row maps to (exact or guessed)
    base_us: float
    cand_us: float
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    flagged: bool = False
    share: float | None = None


class KernelChange(Record):
    """The same node ran another kernel (e.g. `QC8 IGEMM` -> `F32 IGEMM`: a silent float fallback)."""

    node: str
    op: str
    base_kernel: str
    cand_kernel: str


class OpsDiff(Record):
    """One device x variant x threads profiled in both runs."""

    device: str
    variant: str
    threads: int
    base_invoke_us: float
    cand_invoke_us: float
    invoke_ratio: float | None = None
    ops: tuple[OpChange, ...] = ()
    flagged: tuple[str, ...] = ()
    kernel_changes: tuple[KernelChange, ...] = ()
    only_base: tuple[str, ...] = ()
    only_cand: tuple[str, ...] = ()
    fingerprint_changed: bool = False


class OpsComparison(Record):
    """`edgeq compare --ops BASE CANDIDATE`."""

    ok: bool = True
    base: str
    candidate: str
    threshold: float
    diffs: tuple[OpsDiff, ...] = ()
    unmatched: tuple[str, ...] = ()  # device/variant/threads profiled in one run only
    regressed: bool = False
