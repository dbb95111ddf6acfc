"""Issue 13 "Done when": repeatability of the headline p50 (median of session medians) over back-to-back benchmarks,
and of the floor compare decides on (the fastest invoke over the benchmark's sessions).

Run as root:  python bench/repeat_bench.py [--repeats 5] [--boards 3] [--sessions 3] [--seconds 3]

Boards: sshd farm boards (edgeq.testing.sshfarm) on this x86_64 host, the real agent, ai-edge-litert, 1 thread; the
model: 20 x Dense(256) over 192 rows, fp32 (bench/_driftkit.py, ~6 ms per invoke here). Each benchmark is
`fleet.bench(..., sessions=K)` over all boards one board at a time (--parallel 1: boards on one 2-core host
would otherwise slow each other). Per board: the spread (max - min) / median of the 5 headline p50s; target <= 2 %;
the same for the 5 floors.
With --priority (the default) the boards' sshd runs in a cgroup with a high cpu.shares, as a board of its own would
not share its CPU with this host's other work; --no-priority measures without. Appends to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--boards", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=fleet.DEFAULT_SESSIONS)
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per benchmark (total over its sessions)")
    ap.add_argument("--priority", action=argparse.BooleanOptionalAction, default=True)
    a = ap.parse_args()
    load0, t0 = load(), time.monotonic()
    p50s: dict[str, list[float]] = {}
    floors: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="repeat-bench-") as t:
        root = Path(t)
        farm = sshfarm.SSHFarm.start(root / "farm", n=a.boards)
        group = kit.BoardGroup(f"edgeq-repeat-{os.getpid()}", 100000, -1) if a.priority else None
        try:
            art = kit.stacked_dense(root / "a.tflite", 20, rows=192)
            (root / "d.yaml").write_text("devices:\n" + "".join(farm.device_yaml(b) for b in farm.boards))
            for b in farm.boards if group else ():
                group.steady(b.proc.pid)
            inv = fleet.load_inventory(root / "d.yaml")
            for i in range(a.repeats):
                res = fleet.bench(inv, ["all"], art, name="rep", runs=10, min_seconds=a.seconds, sessions=a.sessions, parallel=1)
                for d in res.devices:
                    if not d.results or not d.results[0].ok or d.results[0].latency_ms is None:
                        raise SystemExit(f"bench {i} on {d.device} failed: {d.error}")
                    p50s.setdefault(d.device, []).append(d.results[0].latency_ms.p50)
                    mins = [s.min for s in d.results[0].sessions if s.min is not None]
                    floors.setdefault(d.device, []).append(min(mins))
                print(i, {k: round(v[-1], 3) for k, v in p50s.items()}, floors, file=sys.stderr, flush=True)
        finally:
            if group:
                group.remove()
            farm.stop()
    report(a, p50s, floors, time.monotonic() - t0, load0)


def _spread(xs: list[float]) -> str:
    s = (max(xs) - min(xs)) / statistics.median(xs)
    return f"{s * 100:.2f} % ({'<=' if s <= 0.02 else '>'} 2 %)"


def report(a, p50s: dict[str, list[float]], floors: dict[str, list[float]], wall: float, load0: str) -> None:
    rows = [
        "| board | p50 (median of session medians) of each benchmark, ms | spread | floor (fastest invoke over the "
        "sessions) of each benchmark, ms | spread |",
        "|---|---|---|---|---|",
    ]
    for dev, xs in p50s.items():
        fs = floors[dev]
        rows.append(
            f"| {dev} | {', '.join(f'{x:.3f}' for x in xs)} | {_spread(xs)} | {', '.join(f'{x:.3f}' for x in fs)} | "
            f"{_spread(fs)} |"
        )
    body = "\n".join(
        [
            f"- {a.repeats} back-to-back benchmarks x {a.boards} sshd farm boards (x86_64), {a.sessions} sessions each, "
            f"{a.seconds:g} s timed per benchmark, one board at a time; model 20 x Dense(256) over 192 rows fp32, 1 thread",
            f"- boards' sshd in a cgroup with high cpu.shares: {'yes' if a.priority else 'no'}",
            f"- wall {wall:.0f} s; load average before {load0}, after {load()}",
            "",
            *rows,
        ]
    )
    cmd = (
        f"python bench/repeat_bench.py --repeats {a.repeats} --boards {a.boards} --sessions {a.sessions} --seconds {a.seconds:g}"
    )
    cmd += "" if a.priority else " --no-priority"
    append_results("repeatability: median of session medians over back-to-back benchmarks (issue 13)", cmd, body)
    print(body)


if __name__ == "__main__":
    main()
