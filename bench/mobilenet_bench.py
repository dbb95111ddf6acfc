"""Issue 14 numbers for pipelines/fashion-mnist-mobilenetv2.yaml (MobileNetV2 alpha 0.35, 96x96 RGB, Fashion-MNIST
read as an image folder): fp32 test accuracy >= 0.90, int8 drop <= 1.0 point, int8 size <= 0.40 x fp32, int8/fp32
latency <= 0.75 (ai-edge-litert, 1 thread, this machine).

Run:  python bench/mobilenet_bench.py                       # the full run: about an hour on 2 cores (60,000 images, 5 epochs)
      python bench/mobilenet_bench.py --per-class 20 --epochs 1 --no-record   # a smoke run of the same flow
Writes the tree to data/fashion-mnist-images first when it is missing (about 30 s). Latency: fp32 and int8
interleaved (A B A B, 5 rounds of 500 invokes), the median of each model's round medians.
Writes a dated section to bench/RESULTS.md and prints the same table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from edgeq.tools.fashion_mnist_images import write_tree  # noqa: E402

PIPELINE = REPO / "pipelines" / "fashion-mnist-mobilenetv2.yaml"


def latency_us(model: str, threads: int, runs: int) -> float:
    """Median batch-1 invoke latency (us) with ai-edge-litert, after 50 warm-up invokes (as pipeline_bench.py)."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=model, num_threads=threads)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    rng = np.random.default_rng(0)
    integer = np.issubdtype(d["dtype"], np.integer)
    x = rng.integers(-128, 127, d["shape"]).astype(d["dtype"]) if integer else rng.random(d["shape"], dtype=np.float32)
    it.set_tensor(d["index"], x)
    for _ in range(50):
        it.invoke()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        it.invoke()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e6


TARGETS = {"fp32_accuracy": 0.90, "drop_points": 1.0, "size_ratio": 0.40, "latency_ratio": 0.75}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tree", type=Path, default=REPO / "data" / "fashion-mnist-images")
    ap.add_argument("--per-class", type=int, default=None, help="smoke run: a tree of N images per class and split")
    ap.add_argument("--epochs", type=int, default=None, help="override train.epochs (smoke runs)")
    ap.add_argument("--no-record", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeq-mobilenet-bench-") as td:
        tree = a.tree
        if a.per_class is not None:
            tree = Path(td) / "fashion-mnist-images"
            write_tree(tree, per_class=a.per_class)
        elif not tree.exists():
            write_tree(tree)
        doc = yaml.safe_load(PIPELINE.read_text())
        doc["data"]["path"] = str(tree.resolve())
        if a.epochs is not None:
            doc["train"]["epochs"] = a.epochs
        if a.per_class is not None:
            doc["validate"] = {"gates": {}}  # a smoke run's accuracy is not the point
        pipe = Path(td) / PIPELINE.name
        pipe.write_text(yaml.safe_dump(doc, sort_keys=False))
        t0 = time.perf_counter()
        p = subprocess.run(
            [sys.executable, "-m", "edgeq", "run", str(pipe), "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, "EDGEQ_HOME": str(Path(td) / "home")},
        )
        wall = time.perf_counter() - t0
        if not p.stdout.strip():
            sys.exit(f"edgeq run failed ({p.returncode}):\n{p.stderr[-3000:]}")
        run = json.loads(p.stdout)
        v = run["variants"]
        fp32, int8 = v["fp32"], v["int8"]
        rounds: dict[str, list[float]] = {"fp32": [], "int8": []}
        for _ in range(5):
            for k in ("fp32", "int8"):
                rounds[k].append(latency_us(v[k]["artifact"], 1, runs=500))
        lat = {k: statistics.median(r) for k, r in rounds.items()}
        train = run["stages"]["train"]
    drop = (fp32["accuracy"] - int8["accuracy"]) * 100
    size_ratio = int8["size_bytes"] / fp32["size_bytes"]
    lat_ratio = lat["int8"] / lat["fp32"]

    def ok(good: bool) -> str:
        return "ok" if good else "MISSED"

    rows = [
        f"| fp32 test accuracy | {fp32['accuracy']:.4f} | >= {TARGETS['fp32_accuracy']} | {ok(fp32['accuracy'] >= 0.90)} |",
        f"| int8 test accuracy (drop) | {int8['accuracy']:.4f} ({drop:+.2f} pts) | drop <= 1.0 pt | {ok(drop <= 1.0)} |",
        f"| size fp32 / int8 | {fp32['size_bytes']:,} B / {int8['size_bytes']:,} B ({size_ratio:.3f}) | <= 0.40 | "
        f"{ok(size_ratio <= 0.40)} |",
        f"| p50 latency fp32 / int8, 1 thread | {lat['fp32']:.0f} us / {lat['int8']:.0f} us ({lat_ratio:.2f}) | <= 0.75 | "
        f"{ok(lat_ratio <= 0.75)} |",
    ]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    smoke = f"smoke: {a.per_class} per class, " if a.per_class else ""
    body = (
        f"`edgeq run pipelines/fashion-mnist-mobilenetv2.yaml` ({smoke}{train.get('epochs_run')} epochs run, "
        f"train {train.get('train_seconds')} s, run wall {wall:.0f} s, exit {p.returncode}; "
        f"{fp32['test_samples']} test images); latency: ai-edge-litert, A B A B x5.\n\n"
        f"- load average at the end: {load} (the machine is shared)\n\n"
        "| measure | value | target | |\n|---|---|---|---|\n" + "\n".join(rows)
    )
    print(body)
    if not a.no_record:
        append_results(
            "fashion-mnist-mobilenetv2 (MobileNetV2 a0.35, 96 px)",
            "python bench/mobilenet_bench.py " + " ".join(sys.argv[1:]),
            body,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
