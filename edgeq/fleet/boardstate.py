"""Board state on the orchestrator's side: a session's flags and trend from the agent's document, and their
merge over sessions (union of flags, median trend, per-window median trajectory, hottest reading)."""

from __future__ import annotations

import statistics
from typing import Any

from edgeq.records.boardstate import TrajectoryWindow, union_flags
from edgeq.records.fleet import AgentBench, BenchRun, BenchSession


def _temps(raw: AgentBench) -> list[float]:
    st = raw.state
    if st is None:
        return []
    vals = (st.before.temp_c, st.during.temp_max_c, st.after.temp_c, st.after.vc_temp_c, st.before.vc_temp_c)
    return [t for t in vals if t is not None]


def notes(raw: AgentBench) -> tuple[str, ...]:
    """What the user should read beside the figures: a governor left alone, a cool-down that could not wait."""
    st = raw.state
    out = []
    if st is not None and st.governor is not None and st.governor.error:
        out.append(st.governor.error)
    if st is not None and st.cooldown is not None and st.cooldown.note:
        out.append("cooldown: " + st.cooldown.note)
    return tuple(out)


def run_fields(raw: AgentBench) -> dict[str, Any]:
    """BenchRun fields of one session's state (only the ones the agent reported)."""
    out: dict[str, Any] = {}
    if raw.state is not None:
        out["flags"] = union_flags([raw.state.flags])
        temps = _temps(raw)
        if temps:
            out["temp_max_c"] = max(temps)
        if notes(raw):
            out["notes"] = notes(raw)
    if raw.trend is not None:
        out["trend"] = raw.trend.ratio
    if raw.trajectory:
        out["trajectory_ms"] = tuple(
            TrajectoryWindow(window=w.window, p50=round(w.p50_s * 1000.0, 6), count=w.count) for w in raw.trajectory
        )
    return out


def session_fields(raw: AgentBench) -> dict[str, Any]:
    """BenchSession fields of one session's state."""
    run = run_fields(raw)
    out: dict[str, Any] = {k: run[k] for k in ("flags", "trend", "temp_max_c") if k in run}
    cool = raw.state.cooldown if raw.state is not None else None
    if cool is not None and cool.waited_s is not None:
        out["cooldown_s"] = cool.waited_s
    return out


def _trajectory(runs: list[BenchRun]) -> tuple[TrajectoryWindow, ...]:
    """Per window index, the median over sessions of each session's window median (as long as the shortest)."""
    paths = [r.trajectory_ms for r in runs if r.trajectory_ms]
    if not paths:
        return ()
    n = min(len(p) for p in paths)
    return tuple(
        TrajectoryWindow(window=i, p50=round(statistics.median(p[i].p50 for p in paths), 6), count=sum(p[i].count for p in paths))
        for i in range(n)
    )


def merged_fields(runs: list[BenchRun], sessions: tuple[BenchSession, ...]) -> dict[str, Any]:
    """BenchRun fields of several sessions together."""
    out: dict[str, Any] = {}
    if any("flags" in r.model_fields_set for r in runs):
        out["flags"] = union_flags([r.flags for r in runs])
    trends = [s.trend for s in sessions if s.trend is not None]
    if trends:
        out["trend"] = round(statistics.median(trends), 6)
    temps = [r.temp_max_c for r in runs if r.temp_max_c is not None]
    if temps:
        out["temp_max_c"] = max(temps)
    seen = tuple(dict.fromkeys(n for r in runs for n in r.notes))
    if seen:
        out["notes"] = seen
    path = _trajectory(runs)
    if path:
        out["trajectory_ms"] = path
    return out
