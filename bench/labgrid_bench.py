"""Issue [7 of 7]: labgrid reserve + acquire + release per run, on loopback.

Run:  python bench/labgrid_bench.py [--runs 30] [--cold 5]

A real labgrid-coordinator and labgrid-exporter (edgeq.testing.labfarm) export one real sshd board
(edgeq.testing.sshfarm) as a place. Measured: edgeq.fleet.inventory.labgrid.leased() on a devices.yaml with a
`labgrid:` section, i.e. connect a session, reserve by tag filter, wait for allocation, acquire, read the
NetworkService, release, cancel the reservation, close. `warm`: repeated in one process (what a run pays
once labgrid is imported); `cold`: a fresh Python per run (import of labgrid's gRPC client included),
the cost `edgeq bench` adds on a shared fleet. Target: <= 1 s per run. Writes a section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from edgeq.fleet.inventory.devices import load_inventory  # noqa: E402
from edgeq.fleet.inventory.labgrid import leased  # noqa: E402
from edgeq.testing import labfarm, sshfarm  # noqa: E402

COLD = """
import sys, time
from edgeq.fleet.inventory.devices import load_inventory
inv = load_inventory(sys.argv[1])
t0 = time.monotonic()  # from here: labgrid's import (first use in the process) + the lease
from edgeq.fleet.inventory.labgrid import leased
with leased(inv, lambda m: None) as got:
    assert len(got.devices) == 1
print(time.monotonic() - t0)
"""


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--cold", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        farm = sshfarm.SSHFarm.start(root / "farm", n=1)
        lab = labfarm.LabFarm.start(root / "lab", farm.boards, {farm.boards[0].name: {"pool": "bench"}})
        try:
            dev = root / "devices.yaml"
            doc = {"labgrid": {"coordinator": lab.address, "place_tags": {"pool": "bench"}, "reserve_timeout": 10}}
            dev.write_text(json.dumps({**doc, "defaults": {"known_hosts": str(farm.known_hosts)}}))
            inv = load_inventory(dev)
            warm = []
            for _ in range(a.runs + 1):
                t0 = time.monotonic()
                with leased(inv, lambda m: None) as got:
                    assert len(got.devices) == 1
                warm.append(time.monotonic() - t0)
            first, warm = warm[0], warm[1:]
            cold, procs = [], []
            for _ in range(a.cold):
                t0 = time.monotonic()
                r = subprocess.run([sys.executable, "-c", COLD, str(dev)], check=True, cwd=REPO, capture_output=True, text=True)
                procs.append(time.monotonic() - t0)
                cold.append(float(r.stdout.strip().splitlines()[-1]))
        finally:
            lab.stop()
            farm.stop()
    med_ok = statistics.median(cold) <= 1.0 and statistics.median(warm) <= 1.0
    max_ok = max(cold) <= 1.0 and max(warm) <= 1.0
    load = "/".join(f"{x:.2f}" for x in __import__("os").getloadavg())
    body = "\n".join(
        [
            "| labgrid reserve + acquire + release (one place, loopback) | runs | p50 | p90 | max |",
            "|---|---|---|---|---|",
            f"| warm (in one process; first run {first * 1000:.0f} ms) | {len(warm)} | {statistics.median(warm) * 1000:.0f} ms "
            f"| {pct(warm, 0.9) * 1000:.0f} ms | {max(warm) * 1000:.0f} ms |",
            f"| cold (first lease in a fresh Python: labgrid import included) | {len(cold)} "
            f"| {statistics.median(cold) * 1000:.0f} ms | {pct(cold, 0.9) * 1000:.0f} ms | {max(cold) * 1000:.0f} ms |",
            "",
            f"A whole fresh process (interpreter + edgeq imports + the lease) took {statistics.median(procs):.2f} s "
            "(median): that start-up is every edgeq command's, not labgrid's.",
            f"Target <= 1 s per run: median {'met' if med_ok else 'NOT met'}; every run {'met' if max_ok else 'NOT met'} "
            f"(load average {load} at the end, 2 cores shared with other jobs).",
        ]
    )
    print(body)
    append_results(
        "labgrid reserve + acquire + release per run", f"python bench/labgrid_bench.py --runs {a.runs} --cold {a.cold}", body
    )


if __name__ == "__main__":
    main()
