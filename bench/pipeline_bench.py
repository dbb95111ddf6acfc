"""Issue [1 of 5] numbers: both Fashion-MNIST pipelines, cold vs cached, accuracy/size/latency, --help time.

Run:  python bench/pipeline_bench.py
Writes a dated section to bench/RESULTS.md (command, date, machine) and prints the same table.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PIPELINES = ["pipelines/fashion-mnist-mlp.yaml", "pipelines/fashion-mnist-cnn.yaml"]


def run(pipeline: str, home: str) -> tuple[float, dict]:
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "edgeq", "run", pipeline, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "EDGEQ_HOME": home},
    )
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"{pipeline} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return wall, json.loads(p.stdout)


def latency_us(model: str, threads: int, runs: int = 2000) -> float:
    """Median batch-1 invoke latency with ai-edge-litert on this machine."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=model, num_threads=threads)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    x = (
        np.random.default_rng(0).integers(-128, 127, d["shape"]).astype(d["dtype"])
        if np.issubdtype(d["dtype"], np.integer)
        else np.random.default_rng(0).random(d["shape"], dtype=np.float32)
    )
    it.set_tensor(d["index"], x)
    for _ in range(50):
        it.invoke()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        it.invoke()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e6


def help_wall(n: int = 7) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(["edgeq", "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as home:
        for pl in PIPELINES:
            cold, doc = run(pl, home)
            cached, doc2 = run(pl, home)
            assert doc2["stages"]["train"]["cached"], "second run was not cached"
            v = doc["variants"]
            fp, q = v["fp32"], v["int8"]
            lat = {t: (latency_us(fp["artifact"], t), latency_us(q["artifact"], t)) for t in (1, 2)}
            rows.append(
                {
                    "pipeline": doc["pipeline"],
                    "fp32_acc": fp["accuracy"],
                    "int8_acc": q["accuracy"],
                    "drop_pts": (fp["accuracy"] - q["accuracy"]) * 100,
                    "size_ratio": q["size_ratio"],
                    "fp32_us_t1": lat[1][0],
                    "int8_us_t1": lat[1][1],
                    "lat_ratio_t1": lat[1][1] / lat[1][0],
                    "lat_ratio_t2": lat[2][1] / lat[2][0],
                    "cold_s": cold,
                    "cached_s": cached,
                    "cached_frac": cached / cold,
                }
            )
    hw = help_wall()
    lines = [
        "| pipeline | fp32 acc | int8 acc | drop (pts) | int8/fp32 size | fp32 µs (1 thr) | int8 µs (1 thr) "
        "| int8/fp32 latency (1 thr) | (2 thr) | cold run s | cached run s | cached/cold |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['pipeline']} | {r['fp32_acc']:.4f} | {r['int8_acc']:.4f} | {r['drop_pts']:+.2f} | "
            f"{r['size_ratio']:.3f} | {r['fp32_us_t1']:.1f} | {r['int8_us_t1']:.1f} | {r['lat_ratio_t1']:.2f} | "
            f"{r['lat_ratio_t2']:.2f} | {r['cold_s']:.1f} | {r['cached_s']:.2f} | {r['cached_frac']:.3f} |"
        )
    lines.append("")
    lines.append(f"`edgeq --help` wall time (median of 7): {hw:.3f} s")
    text = "\n".join(lines)
    print(text)
    append_results("Pipeline core (issue 1 of 5)", "python bench/pipeline_bench.py", text)


if __name__ == "__main__":
    main()
