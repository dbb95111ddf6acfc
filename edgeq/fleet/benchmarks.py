"""On-board benchmarks (`bench`, `bench_models`) and the manifest rows of their runs.

Per-board failures are returned as records, never raised: the caller decides the exit code.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeq.config.benchcontrols import BenchControlsSpec
from edgeq.errors import ConfigError, DataError
from edgeq.fleet.board import AgentBundle, Board, runtime_args
from edgeq.fleet.boardstate import run_fields
from edgeq.fleet.deployment import check_tflite, install_on, model_name
from edgeq.fleet.fanout import FleetInterrupted, ProgressFn, failure_fields, failure_record
from edgeq.fleet.inventory.devices import DeviceSpec, Inventory
from edgeq.fleet.operation import FleetOp
from edgeq.fleet.sessions import DEFAULT_SESSIONS, Sizing, per_session, run_sessions
from edgeq.fleet.transport.base import BoardError, TransportFactory
from edgeq.hashing import file_sha256
from edgeq.records.fleet import (
    AgentBench,
    BenchResult,
    BenchRun,
    BoardOutcome,
    FleetCounts,
    FleetSummary,
    LatencyStats,
)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 6)


def bench_run(threads: int, raw: AgentBench) -> BenchRun:
    """The figures of one benchmark in milliseconds, with the agent's whole document as `raw`."""
    lat = raw.latency_s
    return BenchRun(
        threads=threads,
        ok=True,
        latency_ms=LatencyStats(**{k: _ms(getattr(lat, k)) for k in LatencyStats.model_fields}),
        count=lat.count,
        init_ms=_ms(raw.init_seconds),
        first_invoke_ms=_ms(raw.first_invoke_seconds),
        peak_rss_bytes=raw.memory.vmhwm_after_runs_bytes if raw.memory else None,
        runtime=raw.runtime,
        delegate=raw.delegate,
        power=raw.power,
        raw=raw,
        **run_fields(raw),
    )


def bench_result(device: str, variant: str, run: BenchRun, raw_path: Path | str | None) -> BenchResult:
    """The manifest row for one run; `raw_path` is where the caller kept the agent's whole document."""
    if not run.ok or run.raw is None:
        return BenchResult(
            device=device, variant=variant, threads=run.threads, ok=False, error=run.error, kind=run.kind, hint=run.hint
        )
    power = run.power.summary() if run.power is not None and run.power.model_fields_set else None
    return BenchResult(
        device=device,
        variant=variant,
        threads=run.threads,
        ok=True,
        power=power,
        board=run.raw.board,
        raw=None if raw_path is None else str(raw_path),
        **run.figures(),
    )


def unmeasured_result(board: BoardOutcome, variant: str) -> BenchResult:
    """The manifest row of a board that ran no benchmark at all (unreachable, deploy failed, ...)."""
    return BenchResult(
        device=board.device, variant=variant, threads=None, ok=False, status=board.status, error=board.error, hint=board.hint
    )


def _bench_argv(
    d: DeviceSpec,
    name: str,
    sha: str,
    threads: int,
    runs: int,
    warmup: int,
    min_seconds: float,
    controls: BenchControlsSpec | None,
    own_load: int,
) -> list[str]:
    wanted = json.loads((controls or BenchControlsSpec()).over(d.controls()).agent_json() or "{}")
    if own_load > threads:  # thread counts interleave: the load average still holds the biggest one's threads
        wanted["own_load"] = own_load
    return [
        *(("--controls", json.dumps(wanted, separators=(",", ":"))) if wanted else ()),
        *("--name", name, "--sha256", sha),
        *("--runs", str(runs), "--warmup", str(warmup), "--min-seconds", f"{min_seconds:g}"),
        *("--power", d.power.agent_json()),
        *runtime_args(d, threads),
    ]


def pinned(device: str, sub: str, model: dict | None, sha: str) -> None:
    """The sha256 the agent says it ran must be the one we record: BoardError(kind "sha_mismatch") if not."""
    ran = (model or {}).get("sha256")
    if ran != sha:
        raise BoardError(
            device,
            f"agent {sub} ran the model {ran} but edgeq deployed {sha}: the result is not recorded",
            "the model current on the board changed under its name (another deploy?): deploy again and rerun",
            kind="sha_mismatch",
            expected=sha,
            actual=ran,
        )


@dataclass(frozen=True)
class BenchModel:
    """A model to measure: `key` names it in the results (a variant: "int8", "int8@baseline"), `name` on the
    boards (default: the artifact's stem)."""

    key: str
    artifact: Path
    name: str | None = None


@dataclass(frozen=True)
class _Model:
    """A BenchModel checked and hashed once for every board."""

    key: str
    artifact: Path
    name: str
    size: int
    sha: str


@dataclass(frozen=True)
class _Plan:
    """What every board runs: the models, and per session the runs, warm-up and seconds."""

    models: dict[str, _Model]
    runs: int
    warmup: int
    min_seconds: float
    threads: list[int] | None
    inputs: Path | None
    sessions: int
    controls: BenchControlsSpec | None
    sizing: Sizing | None = None  # --ci-target: more sessions until the interval is narrow enough


class _OnBoard:
    """One board's benchmark: each model deployed before its first session and the inputs uploaded once, then
    the session loop (edgeq.fleet.sessions.run_sessions) calls start and measure."""

    def __init__(self, board: Board, plan: _Plan, progress: ProgressFn | None):
        self.board, self.plan, self.progress = board, plan, progress
        self.threads = plan.threads or [board.device.threads]
        self.deployed: dict[str, BoardOutcome] = {}
        self.inputs: str | None = None

    def start(self, key: str, session: int) -> None:
        p, m = self.plan, self.plan.models[key]
        if self.progress:
            self.progress({"event": "session", "device": self.board.name, "model": key, "session": session, "of": p.sessions})
        if session > 1:
            return
        self.deployed[key] = install_on(self.board, m.artifact, m.size, m.sha, m.name, self.progress, then_lock=True)
        if p.inputs is not None and self.inputs is None:
            self.inputs = self.board.upload_tmp(p.inputs, ".npy")

    def measure(self, key: str, threads: int, session: int) -> BenchRun:
        """One agent `bench`; a failure is the run's (kind, error, hint as every fleet record reads them)."""
        p, m, d = self.plan, self.plan.models[key], self.board.device
        if self.progress:
            one = len(p.models) == 1
            where = {"session": session if p.sessions > 1 else None, **({} if one else {"model": key})}
            self.progress({"event": "bench", "device": d.name, "threads": threads, **where})
        argv = _bench_argv(d, m.name, m.sha, threads, p.runs, p.warmup, p.min_seconds, p.controls, max(self.threads))
        try:
            raw = self.board.call("bench", *argv, *(["--inputs", self.inputs] if self.inputs else []))
            assert isinstance(raw, AgentBench)  # noqa: S101 - read_agent_doc's contract for "bench"
            pinned(d.name, "bench", raw.model, m.sha)
        except BoardError as e:
            f = failure_fields(d, e)
            return BenchRun(threads=threads, ok=False, kind=f["kind"], error=f["error"], hint=f["hint"])
        return bench_run(threads, raw)

    def run(self) -> tuple[dict[str, list[BenchRun]], dict[str, BoardError]]:
        try:
            return run_sessions(
                list(self.plan.models), self.threads, self.plan.sessions, self.start, self.measure, self.plan.sizing
            )
        finally:
            if self.inputs:
                self.board.t.remove(self.inputs)

    def outcome(self, m: _Model, runs: list[BenchRun], started: float) -> BoardOutcome:
        """One model's outcome on this board. A session that failed (killed, crashed) fails the board even when
        the others measured: their figures stay in results, and the run says what went wrong instead of exiting
        0 over a crash."""
        d = self.board.device
        bad = next((r for r in runs if not r.ok or r.kind), None)
        dep = self.deployed.get(m.key)
        return BoardOutcome(
            device=d.name,
            address=d.address,
            status="failed" if bad or not runs else "ok",
            deploy=dep.action if dep is not None else None,
            sha256=m.sha,
            bytes_uploaded=self.board.bytes_uploaded,
            results=tuple(runs),
            error=bad.error if bad else None,
            hint=bad.hint if bad else None,
            kind=bad.kind if bad else None,
            seconds=round(time.monotonic() - started, 3),
        )


def _validate(runs: int, warmup: int, min_seconds: float, threads: list[int] | None, inputs: Path | None, sessions: int) -> None:
    if runs < 1 or warmup < 0 or min_seconds < 0:
        raise ConfigError(f"bench needs runs >= 1, warmup >= 0, min_seconds >= 0 (got {runs}, {warmup}, {min_seconds})")
    if sessions < 1:
        raise ConfigError(f"bench needs sessions >= 1 (got {sessions})")
    if threads is not None and (not threads or any(t < 1 for t in threads)):
        raise ConfigError(f"--threads must be positive integers (got {threads})")
    if inputs is not None and not Path(inputs).is_file():
        raise DataError(f"{inputs}: inputs file not found", "pass a .npy file of model inputs")


def bench_models(
    inventory: Inventory,
    targets: list[str],
    models: Sequence[BenchModel],
    *,
    runs: int = 50,
    warmup: int = 5,
    min_seconds: float = 1.0,
    threads: list[int] | None = None,
    inputs: Path | None = None,
    parallel: int = 5,
    progress: ProgressFn | None = None,
    transport_factory: TransportFactory | None = None,
    agent: AgentBundle | None = None,
    sessions: int = DEFAULT_SESSIONS,
    controls: BenchControlsSpec | None = None,
    sizing: Sizing | None = None,
) -> dict[str, FleetSummary]:
    """Deploy each model if needed, then measure them all on each board in `sessions` sessions, interleaved (session
    1 of every model, then session 2, ...; every thread count within each: edgeq.fleet.sessions).

    Returns each model's summary by its key: per board `deploy` (what deploying did) and `results`, one BenchRun per
    thread count with its sessions merged. `runs` and `min_seconds` are totals over the sessions. `controls`
    (cool-down, affinity, governor, sustained mode, flag thresholds) win over each device's own. On Ctrl-C or
    SIGTERM the FleetInterrupted raised holds in `by_model` each model's finished boards.
    """
    _validate(runs, warmup, min_seconds, threads, inputs, sessions)
    s_runs, s_seconds = per_session(runs, min_seconds, sessions)
    if len({m.key for m in models}) < len(models):
        raise ConfigError(f"bench_models needs distinct keys (got {[m.key for m in models]})")
    checked = [(m, check_tflite(m.artifact), model_name(m.artifact, m.name)) for m in models]
    op = FleetOp(
        inventory.select(targets), parallel=parallel, progress=progress, transport_factory=transport_factory, agent=agent
    )
    plan = _Plan(
        {m.key: _Model(m.key, Path(m.artifact), name, size, file_sha256(m.artifact)) for m, size, name in checked},
        s_runs,
        warmup,
        s_seconds,
        threads,
        Path(inputs) if inputs is not None else None,
        sessions,
        controls,
        sizing,
    )
    finished: dict[str, tuple[BoardOutcome, dict[str, BoardOutcome]]] = {}
    lock = threading.Lock()

    def job(d: DeviceSpec) -> BoardOutcome:
        t0 = time.monotonic()
        with op.board(d) as board:
            on = _OnBoard(board, plan, progress)
            measured, failed = on.run()
            per = {k: on.outcome(m, measured[k], t0) for k, m in plan.models.items() if k in measured}
        per = {k: per[k] if k in per else failure_record(d, failed[k], t0) for k in plan.models}
        first = next(iter(per.values()))
        rec = first if len(per) == 1 else next((o for o in per.values() if not o.succeeded), first)
        with lock:
            finished[d.name] = (rec, per)
        return rec

    try:
        res = op.run(job)
    except FleetInterrupted as e:
        e.by_model = _by_model(e.rollout.devices, finished, list(plan.models))
        raise
    out = {}
    for key, devices in _by_model(res.devices, finished, list(plan.models)).items():
        m = plan.models[key]
        out[key] = FleetSummary(
            ok=all(r.status == "ok" for r in devices),
            action="bench",
            artifact=str(m.artifact),
            name=m.name,
            sha256=m.sha,
            runs=runs,
            warmup=warmup,
            min_seconds=min_seconds,
            threads=None if threads is None else tuple(threads),
            **({"sessions": sessions} if sessions != 1 else {}),
            counts=FleetCounts(**Counter[str](r.status for r in devices)),
            devices=devices,
            seconds=op.seconds(),
        )
    return out


def _by_model(
    boards: tuple[BoardOutcome, ...], finished: dict[str, tuple[BoardOutcome, dict[str, BoardOutcome]]], keys: list[str]
) -> dict[str, tuple[BoardOutcome, ...]]:
    """Each model's outcome per board. A board whose record is not its job's own (given up by the watchdog,
    interrupted, never reached) has that record for every model."""
    out: dict[str, list[BoardOutcome]] = {k: [] for k in keys}
    for b in boards:
        mine = finished.get(b.device)
        for k in keys:
            r = mine[1][k] if mine is not None and mine[0] == b else b
            out[k].append(r if "results" in r.model_fields_set else r.replace(results=()))
    return {k: tuple(v) for k, v in out.items()}


def bench(
    inventory: Inventory,
    targets: list[str],
    artifact: Path,
    *,
    name: str | None = None,
    runs: int = 50,
    warmup: int = 5,
    min_seconds: float = 1.0,
    threads: list[int] | None = None,
    inputs: Path | None = None,
    parallel: int = 5,
    progress: ProgressFn | None = None,
    transport_factory: TransportFactory | None = None,
    agent: AgentBundle | None = None,
    sessions: int = DEFAULT_SESSIONS,
    controls: BenchControlsSpec | None = None,
    sizing: Sizing | None = None,
) -> FleetSummary:
    """Deploy if needed, then run the agent's bench `sessions` times per device x threads: `bench_models` for one
    model. Each board's outcome has `deploy` and `results`, one BenchRun per thread count."""
    (res,) = bench_models(
        inventory,
        targets,
        [BenchModel("model", artifact, name)],
        runs=runs,
        warmup=warmup,
        min_seconds=min_seconds,
        threads=threads,
        inputs=inputs,
        parallel=parallel,
        progress=progress,
        transport_factory=transport_factory,
        agent=agent,
        sessions=sessions,
        controls=controls,
        sizing=sizing,
    ).values()
    return res
