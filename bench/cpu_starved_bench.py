"""cpu_starved on a board whose CPU is taken away by a cgroup CPU quota (issue 24, Done when 1).

The board is the local one (transport: local): the real agent in a subprocess, real TFLite, the tiny model.
The board's python runs through a wrapper that writes its own pid into a cgroup v1 cpu group, then execs the
interpreter: for "throttled" benches a group with cpu.cfs_quota_us / cpu.cfs_period_us (default 1600 / 2000:
0.8 of a CPU, the quota of the issue), for "unthrottled" ones a group without a quota. This CI VM is shared
(2 cores, other jobs): to stand for a quiet board, both groups get cpu.shares --shares (default 262144, the v1
maximum, against 1024 for every other task here), so the other jobs yield the CPU to the board's agent and
only the quota differs; --shares 0 leaves the shares alone (the board competes with the host's load: then a
busy host is flagged too, which is the flag's meaning). The two kinds are interleaved
(throttled, unthrottled, unthrottled, throttled, ...), each one `edgeq bench --sessions 1 --sustained S --json`.
Reports how many of each were flagged `cpu_starved`, with each bench's CPU/wall ratio, throttled fraction and
steal fraction (raw.state.cpu) and the 1-min load average (this CI VM is shared: 2 cores, other jobs).
Needs root and the cgroup v1 cpu controller at /sys/fs/cgroup/cpu (cgroup v2: where the kernel has it, put
the wrapper's pid into a v2 group with cpu.max "1600 2000" instead; not available here).

    python bench/cpu_starved_bench.py [--benches 20] [--seconds 2] [--quota 1600] [--period 2000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import append_results  # noqa: E402

from edgeq.fleet.setup.scripts import TINY_MODEL_B64  # noqa: E402

CPU_V1 = Path("/sys/fs/cgroup/cpu")


def _devices(work: Path, name: str, group: Path | None) -> Path:
    python = sys.executable
    if group is not None:
        wrapper = work / ("python-" + name)
        wrapper.write_text("#!/bin/sh\necho $$ > " + str(group / "cgroup.procs") + "\nexec " + sys.executable + ' "$@"\n')
        wrapper.chmod(0o755)
        python = str(wrapper)
    path = work / (name + ".yaml")
    path.write_text("devices:\n  - name: b1\n    transport: local\n    python: " + python + "\n")
    return path


def _bench(work: Path, devices: Path, model: Path, seconds: float) -> dict:
    env = {**os.environ, "EDGEQ_HOME": str(work / "home")}
    argv = [sys.executable, "-m", "edgeq", "bench", str(model), "--devices", str(devices), "--target", "b1"]
    argv += ["--sessions", "1", "--sustained", str(seconds), "--json"]
    p = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)  # noqa: S603
    if p.returncode != 0:
        raise SystemExit("edgeq bench failed (" + str(p.returncode) + "): " + p.stderr[-2000:])
    (res,) = json.loads(p.stdout)["devices"][0]["results"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--benches", type=int, default=20, help="benches of each kind")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--quota", type=int, default=1600)
    ap.add_argument("--period", type=int, default=2000)
    ap.add_argument("--shares", type=int, default=262144, help="cpu.shares of both groups (0: leave alone)")
    args = ap.parse_args()
    if not (CPU_V1 / "cpu.cfs_quota_us").exists():
        raise SystemExit("no cgroup v1 cpu controller at " + str(CPU_V1))
    tag = uuid.uuid4().hex[:8]
    group, plain = CPU_V1 / ("edgeq-bench-" + tag), CPU_V1 / ("edgeq-bench-plain-" + tag)
    group.mkdir()
    plain.mkdir()
    rows = []
    t0 = time.monotonic()
    try:
        (group / "cpu.cfs_period_us").write_text(str(args.period))
        (group / "cpu.cfs_quota_us").write_text(str(args.quota))
        if args.shares:
            for g in (group, plain):
                (g / "cpu.shares").write_text(str(args.shares))
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            model = work / "tiny.tflite"
            model.write_bytes(base64.b64decode(TINY_MODEL_B64))
            kinds = {"throttled": _devices(work, "throttled", group), "unthrottled": _devices(work, "plain", plain)}
            for i in range(args.benches):
                order = ("throttled", "unthrottled") if i % 2 == 0 else ("unthrottled", "throttled")
                for kind in order:
                    res = _bench(work, kinds[kind], model, args.seconds)
                    cpu = res["raw"]["state"].get("cpu") or {}
                    load = os.getloadavg()[0]
                    rows.append((i, kind, "cpu_starved" in res["flags"], cpu, load))
                    print(i, kind, res["flags"], cpu.get("ratio"), cpu.get("throttled_fraction"), round(load, 2), flush=True)
    finally:
        for g in (group, plain):
            for pid in (g / "cgroup.procs").read_text().split():
                try:
                    (CPU_V1 / "cgroup.procs").write_text(pid)
                except OSError:
                    pass
            g.rmdir()
    wall = time.monotonic() - t0

    def count(kind):
        return sum(1 for r in rows if r[1] == kind and r[2]), sum(1 for r in rows if r[1] == kind)

    (ft, nt), (fu, nu) = count("throttled"), count("unthrottled")
    lines = [
        f"Quota {args.quota} / {args.period} us (cgroup v1, {args.quota / args.period:.2f} CPU) on the local board, "
        f"cpu.shares {args.shares or 'left alone'} for both kinds, "
        f"`edgeq bench --sessions 1 --sustained {args.seconds:g}` per bench, kinds interleaved; {wall:.0f} s in all. "
        "Rule: CPU/wall < 0.85 (CPU-bound run), or cgroup throttled > 5 % of the window, or steal > 5 %.",
        "",
        f"- **throttled board flagged `cpu_starved`: {ft} of {nt}** (target: {nt} of {nt})",
        f"- **unthrottled board flagged `cpu_starved`: {fu} of {nu}** (target: 0 of {nu})",
        "",
        "| # | board | cpu_starved | CPU/wall | throttled fraction | nr_throttled | steal fraction | load avg 1 min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, kind, flagged, cpu, load in rows:
        lines.append(
            f"| {i} | {kind} | {'yes' if flagged else 'no'} | {cpu.get('ratio')} | {cpu.get('throttled_fraction', '-')} "
            f"| {cpu.get('nr_throttled', '-')} | {cpu.get('steal_fraction', '-')} | {load:.2f} |"
        )
    command = "python bench/cpu_starved_bench.py " + " ".join(
        [
            f"--benches {args.benches}",
            f"--seconds {args.seconds:g}",
            f"--quota {args.quota}",
            f"--period {args.period}",
            f"--shares {args.shares}",
        ]
    )
    append_results("cpu_starved under a cgroup CPU quota (issue 24, Done when 1)", command, "\n".join(lines))
    print("\n".join(lines[:5]))


if __name__ == "__main__":
    main()
