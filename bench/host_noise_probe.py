"""How steady is this host's speed? One interpreter, loaded once, invoked back to back for S seconds, nothing else
of ours running: per window, the median and the fastest invoke.

Why: issue 13 asks for a median-of-session-medians repeatability of 2 % on the x86 boards. If the same
interpreter's median moves by much more than that from one second to the next with no process, session,
connection or model change in between, the spread comes from the host (a VM's neighbours, its clock), and no
harness change can remove it; the floor (the fastest invoke) is what such noise cannot move up.

    python bench/host_noise_probe.py [--seconds 60] [--window 2]

Model: 20 x Dense(256) over 192 rows, fp32 (bench/_driftkit.py), ai-edge-litert, 1 thread, as the drift and
repeatability benches use. Appends to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _driftkit as kit  # noqa: E402
from _common import append_results  # noqa: E402


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _steal() -> int:
    return int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--window", type=float, default=2.0)
    a = ap.parse_args()
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    with tempfile.TemporaryDirectory() as t:
        model = kit.stacked_dense(Path(t) / "a.tflite", 20, rows=192)
        it = Interpreter(model_path=str(model), num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.random.default_rng(0).random(d["shape"], dtype=np.float32))
    for _ in range(20):
        it.invoke()
    load0, steal0 = load(), _steal()
    windows: list[list[float]] = []
    t0 = time.perf_counter()
    while (now := time.perf_counter()) - t0 < a.seconds:
        w = int((now - t0) // a.window)
        while len(windows) <= w:
            windows.append([])
        t = time.perf_counter()
        it.invoke()
        windows[w].append((time.perf_counter() - t) * 1e3)
    windows = [w for w in windows if len(w) >= 10]
    meds = [statistics.median(w) for w in windows]
    mins = [min(w) for w in windows]
    steal = _steal() - steal0

    def spread(xs: list[float]) -> str:
        rel = 100 * (max(xs) - min(xs)) / statistics.median(xs)
        return f"{min(xs):.3f} .. {max(xs):.3f} ms, (max - min) / median {rel:.1f} %"

    body = "\n".join(
        [
            f"- one ai-edge-litert interpreter (20 x Dense(256) over 192 rows, fp32, 1 thread), invoked back to back for "
            f"{a.seconds:g} s in {len(windows)} windows of {a.window:g} s; nothing else of ours running",
            f"- load average before {load0}, after {load()}; steal time during: {steal} ticks (of ~{a.seconds * 200:.0f} "
            "cpu-ticks on 2 cores)",
            f"- window medians: {spread(meds)}",
            f"- window fastest invokes: {spread(mins)}",
            f"- fastest invoke over the whole run {min(mins):.3f} ms; over the first 5 windows {min(mins[:5]):.3f} ms, over "
            f"the last 5 {min(mins[-5:]):.3f} ms",
            "",
            "| window | median ms | fastest ms |",
            "|---|---|---|",
            *(f"| {i} | {m:.3f} | {f:.3f} |" for i, (m, f) in enumerate(zip(meds, mins, strict=True))),
        ]
    )
    cmd = f"python bench/host_noise_probe.py --seconds {a.seconds:g} --window {a.window:g}"
    append_results("host speed over a minute: one interpreter, nothing else changing (issue 13)", cmd, body)
    print(body)


if __name__ == "__main__":
    main()
