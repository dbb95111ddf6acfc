"""Issue 13 "Done when": real drift injected mid-benchmark, and a really slower candidate, judged by `compare`.

Run as root (cgroup v1):  python bench/drift_bench.py [--trials 20] [--sessions 3] [--seconds 1.0]

Board: one sshd farm board (edgeq.testing.sshfarm), the real agent, ai-edge-litert, threads 1. Models: fp32 stacks of
Dense(256) over 192 rows (bench/_driftkit.py), 20 layers (A) and 23 layers (B: 15 % more multiply-adds).
Each trial is K sessions per side, interleaved A B A B ... (session = one `fleet.bench` call: a fresh SSH
connection, agent process and interpreter), then edgeq.results.compare on the two sides:
  (a) no change: A vs A (one file under two model names); during ONE randomly chosen candidate session the
      board's sshd (so that session's agent) runs in a cgroup with a CPU quota (cpu.cfs_quota_us /
      cfs_period_us): drift hits one side only.
      Counted: how often compare says "regression" — its session-floors rule (the fastest invoke over the sessions,
      candidate / base, over the threshold AND its bootstrap interval excludes 1), the median-of-session-medians
      rule it uses for sessions stored without minima and the old method (one session per side,
      raw-sample Mann-Whitney + ratio), the latter on the drifted candidate session vs the baseline session
      next to it (what a single-session benchmark reports when drift falls on it) and on an undrifted pair.
  (b) B vs A, no injected drift: how often a regression is flagged (should be every time).
The induced drift is measured, not assumed: the drifted session's median over the median of the same side's
other sessions. Appends to bench/RESULTS.md with the load (the machine is shared with other work).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _driftkit as kit  # noqa: E402
from _common import append_results  # noqa: E402

from edgeq import fleet  # noqa: E402
from edgeq.testing import sshfarm  # noqa: E402


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def trial(ctx: dict, base: Path, cand: Path, k: int, drift_at: int | None) -> dict:
    """K sessions per side, A B A B ...; drift_at: the candidate session (0-based) run under the quota."""
    inv, pid, g, a = ctx["inv"], ctx["pid"], ctx["group"], ctx["args"]
    b_runs, c_runs = [], []
    for s in range(k):
        b_runs.append(kit.one_session(inv, "b", base, "base", 10, a.seconds))
        if s == drift_at:
            g.slow(pid)
        try:
            c_runs.append(kit.one_session(inv, "b", cand, "cand", 10, a.seconds))
        finally:
            g.steady(pid)
    j = drift_at if drift_at is not None else 0
    other = (j + 1) % k
    out = {
        "floors": kit.verdict(kit.merged(b_runs), kit.merged(c_runs), sessions=True),
        "sessions": kit.verdict(kit.merged(b_runs), kit.merged(c_runs), sessions=True, floors=False),
        "paired": kit.verdict(kit.merged(b_runs), kit.merged(c_runs), sessions=True, rerun=True, floors=False),
        "old_on_drifted": kit.verdict(b_runs[j], c_runs[j], sessions=False),
        "old_undrifted": kit.verdict(b_runs[other], c_runs[other], sessions=False),
        "base_ms": [round(kit.median_ms(r), 3) for r in b_runs],
        "cand_ms": [round(kit.median_ms(r), 3) for r in c_runs],
        "base_min_ms": [round(kit.min_ms(r), 4) for r in b_runs],
        "cand_min_ms": [round(kit.min_ms(r), 4) for r in c_runs],
        "base_p5_ms": [round(kit.quantile_ms(r, 5), 4) for r in b_runs],
        "cand_p5_ms": [round(kit.quantile_ms(r, 5), 4) for r in c_runs],
    }
    if drift_at is not None:
        rest = [kit.median_ms(r) for i, r in enumerate(c_runs) if i != j]
        out["induced"] = kit.median_ms(c_runs[j]) / statistics.median(rest)
    return out


def _count(rows: list[dict], key: str) -> str:
    return f"{sum(r[key]['regression'] for r in rows)} of {len(rows)}"


def _pct(xs: list[float]) -> str:
    return f"median x{statistics.median(xs):.3f} (min x{min(xs):.3f}, max x{max(xs):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--sessions", type=int, default=fleet.DEFAULT_SESSIONS)
    ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per session")
    ap.add_argument("--period-us", type=int, default=6000)
    ap.add_argument("--quota-us", type=int, default=5400)
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    t_start, load0 = time.monotonic(), load()
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as t:
        root = Path(t)
        farm = sshfarm.SSHFarm.start(root / "farm", n=1)
        group = kit.BoardGroup(f"edgeq-drift-{os.getpid()}", a.period_us, a.quota_us)
        try:
            base = kit.stacked_dense(root / "a.tflite", 20, rows=192)
            slower = kit.stacked_dense(root / "b.tflite", 23, rows=192)
            (root / "d.yaml").write_text("devices:\n" + farm.device_yaml(farm.boards[0], name="b"))
            pid = farm.boards[0].proc.pid
            group.steady(pid)
            ctx = {"inv": fleet.load_inventory(root / "d.yaml"), "pid": pid, "group": group, "args": a}
            drift_rows, slow_rows = [], []
            for i in range(a.trials):
                r = trial(ctx, base, base, a.sessions, rng.randrange(a.sessions))
                drift_rows.append(r)
                print(json.dumps({"trial": i, "kind": "drift", **r}), file=sys.stderr, flush=True)
            for i in range(a.trials):
                r = trial(ctx, base, slower, a.sessions, None)
                slow_rows.append(r)
                print(json.dumps({"trial": i, "kind": "slower", **r}), file=sys.stderr, flush=True)
        finally:
            group.remove()
            farm.stop()
    wall = time.monotonic() - t_start
    report(a, drift_rows, slow_rows, wall, load0)


def report(a, drift_rows: list[dict], slow_rows: list[dict], wall: float, load0: str) -> None:
    true_ratio = [statistics.median(r["cand_ms"]) / statistics.median(r["base_ms"]) for r in slow_rows]
    body = "\n".join(
        [
            f"- board: one sshd farm board, agent + ai-edge-litert, 1 thread; {a.sessions} sessions per side, "
            f"~{a.seconds:g} s timed each, interleaved A B A B; drift = cgroup v1 quota {a.quota_us} us per "
            f"{a.period_us} us on the board's sshd during one random candidate session",
            "- measured drift in the drifted session (its median / the side's other sessions): "
            + _pct([r["induced"] for r in drift_rows]),
            f"- B (23 layers) vs A (20 layers), measured (median of session medians): {_pct(true_ratio)}; "
            f"(fastest invoke over the sessions): {_pct([r['floors']['floor_ratio'] for r in slow_rows])}",
            f"- wall {wall / 60:.1f} min; load average before {load0}, after {load()}",
            "",
            "| trials | method | (a) unchanged artifact, drift in one side: said regression | (b) 15 % slower: flagged |",
            "|---|---|---|---|",
            f"| {a.trials} | compare (K={a.sessions}: session floors, fastest invoke over the sessions > x1.10 AND its "
            f"session interval excludes 1) | {_count(drift_rows, 'floors')} | {_count(slow_rows, 'floors')} |",
            f"| {a.trials} | compare on sessions stored before schema 7 (K={a.sessions}: median of medians > x1.10 "
            "AND ratio CI excludes 1) | "
            f"{_count(drift_rows, 'sessions')} | {_count(slow_rows, 'sessions')} |",
            f"| {a.trials} | the same, paired sessions (base as a rerun baseline: interval of the pair ratios) | "
            f"{_count(drift_rows, 'paired')} | {_count(slow_rows, 'paired')} |",
            f"| {a.trials} | old: one session per side, raw Mann-Whitney + ratio, on the drifted session | "
            f"{_count(drift_rows, 'old_on_drifted')} | {_count(slow_rows, 'old_on_drifted')} (session 1) |",
            f"| {a.trials} | old: one session per side, on an undrifted session pair | "
            f"{_count(drift_rows, 'old_undrifted')} | {_count(slow_rows, 'old_undrifted')} (session 2) |",
        ]
    )
    cmd = f"python bench/drift_bench.py --trials {a.trials} --sessions {a.sessions} --seconds {a.seconds:g}"
    append_results("drift injected mid-benchmark: compare's verdicts (issue 13)", cmd, body)
    print(body)


if __name__ == "__main__":
    main()
