"""Issue 14: MobileNetV2 int8/fp32 latency at 1 thread on x86 (ai-edge-litert, random weights; target <= 0.55 at
224 px), the issue's reference shapes: 224 px alpha 1.0 (fp32 8.85 MB p50 6.5 ms; int8 2.66 MB 3.1 ms) and 96 px
alpha 0.35 (0.30 -> 0.21 ms).

Run:  python bench/mobilenet224_bench.py [--rounds 5] [--runs 100] [--no-record]
Models: edgeq's builtin mobilenet_v2 (keras.applications base, include_top=False, average pooling, Dense(10)),
random weights, converted by edgeq's converter (fp32; int8 per-channel, int8 I/O, calibrated on 32 random
[-1, 1] images) and, when edgeq[tflite-quant] is installed, int8 by the LiteRT quantizer from the fp32 .tflite.
Latency: batch 1, 1 thread, the variants interleaved (A B C A B C ...), each round `--runs` invokes after 20
warm-up ones; p50 = the median of the round medians. Writes a dated section to bench/RESULTS.md.
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
from _common import append_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TARGET = 0.55


def build(size: int, alpha: float, out: Path) -> dict[str, Path]:
    import numpy as np

    from edgeq.config import ModelSpec, VariantSpec
    from edgeq.data import zoo
    from edgeq.stages.convert import convert

    model = zoo.build(ModelSpec(builtin="mobilenet_v2", alpha=alpha), out, (size, size, 3), 10)
    calib = np.random.default_rng(0).uniform(-1, 1, (32, size, size, 3)).astype(np.float32)
    files = {"fp32": out / f"mnv2-{size}-fp32.tflite", "int8": out / f"mnv2-{size}-int8.tflite"}
    files["fp32"].write_bytes(convert(model, VariantSpec(type="fp32"), None))
    files["int8"].write_bytes(convert(model, VariantSpec(type="int8"), calib))
    try:
        from edgeq.stages import litert

        litert._quantizer_class(VariantSpec(type="int8"))  # noqa: SLF001 - raises when the extra is missing
    except Exception:  # noqa: BLE001 - the extra is optional here
        return files
    qdir = out / f"q{size}"
    qdir.mkdir()
    litert.quantize_float(files["fp32"].read_bytes(), VariantSpec(type="int8"), calib, qdir, "bench")
    files["int8 (LiteRT quantizer)"] = qdir / "model.tflite"
    return files


def _interp(path: Path):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    rng = np.random.default_rng(0)
    integer = np.issubdtype(d["dtype"], np.integer)
    x = rng.integers(-128, 127, d["shape"]).astype(d["dtype"]) if integer else rng.uniform(-1, 1, d["shape"]).astype(np.float32)
    it.set_tensor(d["index"], x)
    for _ in range(20):
        it.invoke()
    return it


def latencies(files: dict[str, Path], rounds: int, runs: int) -> dict[str, float]:
    """p50 (ms) per model: the median of `rounds` round medians, models interleaved within each round."""
    interps = {k: _interp(p) for k, p in files.items()}
    meds: dict[str, list[float]] = {k: [] for k in files}
    for _ in range(rounds):
        for k, it in interps.items():
            samples = []
            for _ in range(runs):
                t = time.perf_counter()
                it.invoke()
                samples.append(time.perf_counter() - t)
            meds[k].append(statistics.median(samples) * 1e3)
    return {k: statistics.median(v) for k, v in meds.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--no-record", action="store_true")
    a = ap.parse_args()
    rows = ["| model | size (MB) | p50 1 thread (ms) | / fp32 |", "|---|---|---|---|"]
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="edgeq-mnv2-") as td:
        for size, alpha in ((224, 1.0), (96, 0.35)):
            files = build(size, alpha, Path(td))
            lat = latencies(files, a.rounds, a.runs)
            for k, p in files.items():
                rows.append(
                    f"| MobileNetV2 {size} px a{alpha} {k} | {p.stat().st_size / 1e6:.2f} | {lat[k]:.2f} | "
                    f"{lat[k] / lat['fp32']:.2f} |"
                )
            if size == 224:
                r = lat["int8"] / lat["fp32"]
                verdicts.append(f"224 px int8/fp32 = {r:.2f} (target <= {TARGET}): {'met' if r <= TARGET else 'NOT met'}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    import ai_edge_litert

    body = "\n".join(
        [
            f"- ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')} (XNNPACK), 1 thread, random weights; "
            f"{a.rounds} interleaved rounds of {a.runs} invokes",
            f"- load average at the end: {load} (the machine is shared with other jobs: latencies are inflated and noisy)",
            "",
            *rows,
            "",
            *verdicts,
        ]
    )
    print(body)
    if not a.no_record:
        append_results(
            "MobileNetV2 int8 vs fp32 latency, 1 thread, x86",
            "python bench/mobilenet224_bench.py " + " ".join(sys.argv[1:]),
            body,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
