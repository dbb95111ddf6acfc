"""On-board benchmarks (`bench`) and predictions (`predict`).

Per-board failures are returned as records, never raised: the caller decides the exit code.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from edgeq.config.benchcontrols import BenchControlsSpec
from edgeq.errors import ConfigError, DataError
from edgeq.fleet.board import AgentBundle, Board, build_agent, runtime_args
from edgeq.fleet.boardstate import run_fields
from edgeq.fleet.deploy import check_tflite, install_on, model_name
from edgeq.fleet.fanout import ProgressFn, board_session, run_fleet
from edgeq.fleet.inventory.devices import DeviceSpec, Inventory
from edgeq.fleet.sessions import merge_sessions, per_session
from edgeq.fleet.transport.base import BoardError, TransportFactory
from edgeq.fleet.transport.factory import open_transport
from edgeq.hashing import file_sha256
from edgeq.records.fleet import (
    STATE_KEYS,
    AgentBench,
    AgentPredict,
    BenchResult,
    BenchRun,
    BoardOutcome,
    FleetSummary,
    LatencyStats,
)

# the board is gone, or a call cannot finish within command_timeout (the agent's own deadline stopped it: every
# later session asks for the same time): no point trying more thread counts or sessions
_GIVE_UP = ("connection_dropped", "command_timeout", "deadline")


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
        latency_ms=run.latency_ms,
        count=run.count,
        init_ms=run.init_ms,
        first_invoke_ms=run.first_invoke_ms,
        peak_rss_bytes=run.peak_rss_bytes,
        runtime=run.runtime,
        delegate=run.delegate,
        power=power,
        board=run.raw.board,
        raw=None if raw_path is None else str(raw_path),
        **{
            k: getattr(run, k)
            for k in ("sessions", "spread", "spread_std_ms", "ci_ms", "harness_floor_ms", *STATE_KEYS)
            if k in run.model_fields_set
        },
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


def _runs_on(
    board: Board, argv_for, threads: list[int], remote_inputs: str | None, progress, sha: str, session: int | None = None
) -> list[BenchRun]:
    """One agent `bench` per thread count; a failed one is recorded and the next one still runs."""
    out: list[BenchRun] = []
    for t in threads:
        if progress:
            progress({"event": "bench", "device": board.name, "threads": t, "session": session})
        argv = argv_for(t) + (["--inputs", remote_inputs] if remote_inputs else [])
        try:
            raw = board.call("bench", *argv)
            assert isinstance(raw, AgentBench)  # noqa: S101 - read_agent_doc's contract for "bench"
            pinned(board.name, "bench", raw.model, sha)
        except BoardError as e:
            out.append(BenchRun(threads=t, ok=False, kind=e.kind, error=e.message, hint=e.hint))
            if e.kind in _GIVE_UP:
                break
            continue
        out.append(bench_run(t, raw))
    return out


def _sessions_on(
    board: Board, argv_for, threads: list[int], remote_inputs: str | None, progress, sha: str, k: int
) -> list[BenchRun]:
    """K sessions, thread counts interleaved within each (1: t1 t2, 2: t1 t2, ...); one merged run per thread count."""
    per: dict[int, list[BenchRun]] = {t: [] for t in threads}
    for s in range(1, k + 1):
        runs = _runs_on(board, argv_for, threads, remote_inputs, progress, sha, s if k > 1 else None)
        for r in runs:
            per[r.threads].append(r)
        if any(r.kind in _GIVE_UP for r in runs) or len(runs) < len(threads):
            break
    out = []
    for t in threads:
        if per[t]:
            merged = merge_sessions(per[t])
            failed = next((r for r in per[t] if not r.ok), None)
            out.append(
                merged
                if failed is None or not merged.ok
                else merged.replace(kind=failed.kind, error=failed.error, hint=failed.hint)
            )
    return out


def _validate(runs: int, warmup: int, min_seconds: float, threads: list[int] | None, inputs: Path | None, sessions: int) -> None:
    if runs < 1 or warmup < 0 or min_seconds < 0:
        raise ConfigError(f"bench needs runs >= 1, warmup >= 0, min_seconds >= 0 (got {runs}, {warmup}, {min_seconds})")
    if sessions < 1:
        raise ConfigError(f"bench needs sessions >= 1 (got {sessions})")
    if threads is not None and (not threads or any(t < 1 for t in threads)):
        raise ConfigError(f"--threads must be positive integers (got {threads})")
    if inputs is not None and not Path(inputs).is_file():
        raise DataError(f"{inputs}: inputs file not found", "pass a .npy file of model inputs")


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
    sessions: int = 1,
    controls: BenchControlsSpec | None = None,
) -> FleetSummary:
    """Deploy if needed, then run the agent's bench `sessions` times per device x threads.

    Each board's outcome has `deploy` (what deploying did) and `results`: one BenchRun per thread count,
    its sessions merged (edgeq.fleet.sessions). `runs` and `min_seconds` are totals over the sessions.
    `controls` (cool-down, affinity, governor, sustained mode, flag thresholds) win over each device's own.
    """
    _validate(runs, warmup, min_seconds, threads, inputs, sessions)
    s_runs, s_seconds = per_session(runs, min_seconds, sessions)
    size = check_tflite(artifact)
    name = model_name(artifact, name)
    devices = inventory.select(targets)
    sha = file_sha256(artifact)
    agent = agent or build_agent()
    factory = transport_factory or open_transport
    started = time.monotonic()

    def job(d: DeviceSpec) -> BoardOutcome:
        t0 = time.monotonic()
        with board_session(d, agent, factory, progress) as board:
            dep = install_on(board, artifact, size, sha, name, progress, then_lock=True)
            remote_inputs = board.upload_tmp(Path(inputs), ".npy") if inputs is not None else None
            try:
                most = max(threads or [d.threads])
                argv_for = lambda t: _bench_argv(d, name, sha, t, s_runs, warmup, s_seconds, controls, most)  # noqa: E731
                results = _sessions_on(board, argv_for, threads or [d.threads], remote_inputs, progress, sha, sessions)
            finally:
                if remote_inputs:
                    board.t.remove(remote_inputs)
            up = board.bytes_uploaded
        # a session that failed (killed, crashed) fails the board even when the others measured: their figures
        # stay in results, and the run says what went wrong instead of exiting 0 over a crash
        bad = next((r for r in results if not r.ok or r.kind), None)
        return BoardOutcome(
            device=d.name,
            address=d.address,
            status="failed" if bad or not results else "ok",
            deploy=dep.action,
            sha256=sha,
            bytes_uploaded=up,
            results=tuple(results),
            error=bad.error if bad else None,
            hint=bad.hint if bad else None,
            kind=bad.kind if bad else None,
            seconds=round(time.monotonic() - t0, 3),
        )

    res = run_fleet(devices, job, parallel=parallel, progress=progress)
    boards = tuple(r if "results" in r.model_fields_set else r.replace(results=()) for r in res.devices)
    return FleetSummary(
        ok=all(r.status == "ok" for r in boards),
        action="bench",
        artifact=str(artifact),
        name=name,
        sha256=sha,
        runs=runs,
        warmup=warmup,
        min_seconds=min_seconds,
        threads=None if threads is None else tuple(threads),
        **({"sessions": sessions} if sessions != 1 else {}),
        counts=res.counts,
        devices=boards,
        seconds=round(time.monotonic() - started, 3),
    )


def predict(
    inventory: Inventory,
    device_name: str,
    model_name: str,
    inputs: Path,
    *,
    transport_factory: TransportFactory | None = None,
    agent: AgentBundle | None = None,
    sha256: str | None = None,
) -> list[int]:
    """Class predictions (argmax) of the board's current `model_name` for each row of an .npy file.

    With `sha256`, the predictions count only if the board ran that very model (else BoardError
    kind "sha_mismatch").
    """
    if not Path(inputs).is_file():
        raise DataError(f"{inputs}: inputs file not found", "pass a .npy file of model inputs")
    d = inventory.get(device_name)
    agent = agent or build_agent()
    factory = transport_factory or open_transport
    with board_session(d, agent, factory) as board:
        remote = board.upload_tmp(Path(inputs), ".npy")
        try:
            args = ["--name", model_name, "--inputs", remote, *(["--sha256", sha256] if sha256 else [])]
            doc = board.call("predict", *args, *runtime_args(d))
        finally:
            board.t.remove(remote)
    assert isinstance(doc, AgentPredict)  # noqa: S101 - read_agent_doc's contract for "predict"
    if sha256:
        pinned(d.name, "predict", doc.model, sha256)
    return list(doc.predictions)
