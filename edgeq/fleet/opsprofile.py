"""Per-op profiling sessions (`edgeq bench --ops`): after a bench's latency sessions, never mixed into them.

On each board, for every model its bench measured there: K sessions (the bench's K), each one agent `profile`
call (a fresh process, LiteRT's CompiledModel with its profiler: edgeq/agent/profile.py) per thread count, in the
bench's order (session 1 of every model and thread count, then session 2, ...). The host aggregates the K
documents into one OpProfile (edgeq.results.ops.aggregate) beside the bench's own Interpreter p50.

A board that cannot profile answers kind "unsupported" (exit 0, reason and fix): its profile says so and its
later sessions are skipped. A failed session is kept as the profile's error; the other sessions still count.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from typing import Any

from edgeq.fleet.board import AgentBundle, Board, runtime_args
from edgeq.fleet.fanout import ProgressFn, failure_fields
from edgeq.fleet.inventory.devices import DeviceSpec, Inventory
from edgeq.fleet.operation import FleetOp
from edgeq.fleet.sessions import GIVE_UP
from edgeq.fleet.transport.base import BoardError, TransportFactory
from edgeq.records.fleet import BoardOutcome, FleetSummary
from edgeq.records.ops import OpProfile, OpsReport

MIN_RUNS = 10  # per session: a p50/p90 per op over fewer profiled runs says little


def _planned(summary: FleetSummary, device: str) -> dict[int, float | None]:
    """Thread count -> the bench's Interpreter p50 (µs) for the thread counts this board measured."""
    for d in summary.devices:
        if d.device == device:
            return {
                r.threads: (r.latency_ms.p50 * 1000.0 if r.latency_ms and r.latency_ms.p50 is not None else None)
                for r in d.results
                if r.ok and r.threads is not None
            }
    return {}


def _argv(d: DeviceSpec, name: str, sha: str, threads: int, runs: int, warmup: int) -> list[str]:
    return [
        "--name",
        name,
        "--sha256",
        sha,
        "--runs",
        str(runs),
        "--warmup",
        str(warmup),
        "--seed",
        "0",
        *runtime_args(d, threads),
    ]


def _timeout(d: DeviceSpec, runs: int, p50_us: float | None) -> float:
    # profiled + unprofiled runs + ~(4 + chunks) x warm-up (the agent's doc): ~2.5 x runs x latency past the load
    return d.command_timeout + 2.5 * runs * (p50_us or 0.0) / 1e6


def _on_board(
    board: Board, bench: Mapping[str, FleetSummary], runs: int, warmup: int, sessions: int, progress: ProgressFn | None
) -> list[OpProfile]:
    from edgeq.results.ops import aggregate  # numpy: only once a board profiles

    d = board.device
    plan = {k: _planned(s, d.name) for k, s in bench.items()}
    docs: dict[tuple[str, int], list[tuple[int, dict[str, Any]]]] = {(k, t): [] for k, ts in plan.items() for t in ts}
    fails: dict[tuple[str, int], list[tuple[str | None, str | None, str | None]]] = {key: [] for key in docs}
    done: set[tuple[str, int]] = set()  # unsupported, or given up
    for s in range(1, sessions + 1):
        for k, ts in plan.items():
            for t, p50 in ts.items():
                if (k, t) in done:
                    continue
                if progress:
                    progress({"event": "profile", "device": d.name, "model": k, "threads": t, "session": s, "of": sessions})
                summary = bench[k]
                try:
                    doc = board.call(
                        "profile",
                        *_argv(d, summary.name or k, summary.sha256 or "", t, runs, warmup),
                        timeout=_timeout(d, runs, p50),
                    ).to_json()
                except BoardError as e:
                    f = failure_fields(d, e)
                    fails[(k, t)].append((f["kind"], f["error"], f["hint"]))
                    if e.kind in GIVE_UP:
                        done.add((k, t))
                    continue
                docs[(k, t)].append((s, doc))
                if doc.get("kind") == "unsupported":
                    done.add((k, t))
    return [
        aggregate(d.name, k, t, docs[(k, t)], failures=fails[(k, t)], interpreter_p50_us=p50)
        for k, ts in plan.items()
        for t, p50 in ts.items()
    ]


def profile_ops(
    inventory: Inventory,
    targets: list[str],
    bench: Mapping[str, FleetSummary],
    *,
    runs: int = 50,
    warmup: int = 5,
    sessions: int = 5,
    parallel: int = 5,
    progress: ProgressFn | None = None,
    transport_factory: TransportFactory | None = None,
    agent: AgentBundle | None = None,
) -> OpsReport:
    """Profile, on every board of `bench` (the bench_models result, by model key) that measured a model, that
    model per thread count in `sessions` sessions of ceil(runs / sessions) (at least MIN_RUNS) profiled runs.

    The models are the ones the bench deployed (by name, pinned by sha256). A board that cannot be reached gives
    each of its models a profile of kind "failed"."""
    per = max(MIN_RUNS, math.ceil(runs / max(1, sessions)))
    names = {d.device for s in bench.values() for d in s.devices if any(r.ok for r in d.results)}
    devices = [d for d in inventory.select(targets) if d.name in names]
    profiles: dict[str, list[OpProfile]] = {}
    lock = threading.Lock()
    if not devices:
        return OpsReport(sessions=sessions, runs=per)
    op = FleetOp(devices, parallel=parallel, progress=progress, transport_factory=transport_factory, agent=agent)

    def job(d: DeviceSpec) -> BoardOutcome:
        t0 = time.monotonic()
        try:
            with op.board(d) as board:
                got = _on_board(board, bench, per, warmup, sessions, progress)
        except BoardError as e:
            f = failure_fields(d, e)
            got = [
                OpProfile(
                    device=d.name, variant=k, threads=t, kind="failed", error_kind=f["kind"], error=f["error"], hint=f["hint"]
                )
                for k, s in bench.items()
                for t in _planned(s, d.name)
            ]
        with lock:
            profiles[d.name] = got
        bad = next((p for p in got if p.kind == "failed"), None)
        return BoardOutcome(
            device=d.name,
            address=d.address,
            status="failed" if bad else "ok",
            error=bad.error if bad else None,
            hint=bad.hint if bad else None,
            seconds=round(time.monotonic() - t0, 3),
        )

    op.run(job)
    order = [d.name for d in devices]
    return OpsReport(sessions=sessions, runs=per, profiles=tuple(p for n in order for p in profiles.get(n, [])))
