"""Is int8 slower than fp32 on this x86 because of edgeq's conversion, or because of the CPU's int8 kernels?

Run: python bench/int8_kernels_probe.py
Converts keras.applications MobileNetV2 224 (random weights, nothing downloaded) with TensorFlow's converter
directly (no edgeq code): fp32, and full-integer int8 (20 random calibration batches, int8 I/O). Times both with
ai-edge-litert at 1 thread, with its default XNNPACK delegate and with the builtin kernels only. Appends to
bench/RESULTS.md with the CPU's flags that matter for int8 (avx2, avx512*, vnni).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import append_results  # noqa: E402


def convert(out: Path) -> dict[str, Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    m = tf.keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None, classes=10)

    def rep():
        rng = np.random.default_rng(0)
        for _ in range(20):
            yield [rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)]

    paths = {"fp32": out / "fp32.tflite", "int8": out / "int8.tflite"}
    paths["fp32"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    c = tf.lite.TFLiteConverter.from_keras_model(m)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = rep
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = c.inference_output_type = tf.int8
    paths["int8"].write_bytes(c.convert())
    return paths


def p50_ms(path: Path, builtin_only: bool, runs: int = 40) -> float:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kw = {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES} if builtin_only else {}
    it = Interpreter(model_path=str(path), num_threads=1, **kw)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    x = np.zeros(d["shape"], d["dtype"])
    ts = []
    for _ in range(runs + 5):
        it.set_tensor(d["index"], x)
        t = time.perf_counter()
        it.invoke()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts[5:])) * 1e3


def main() -> int:
    load0 = Path("/proc/loadavg").read_text().split()[:3]
    paths = convert(Path(tempfile.mkdtemp(prefix="edgeq-int8-probe-")))
    rows = []
    for builtin_only in (False, True):
        f, i = (p50_ms(paths[k], builtin_only) for k in ("fp32", "int8"))
        kind = "builtin kernels only" if builtin_only else "default (XNNPACK)"
        rows.append(f"| {kind} | {f:.2f} ms | {i:.2f} ms | {i / f:.2f} |")
        print(rows[-1], flush=True)
    flags = set(Path("/proc/cpuinfo").read_text().split())
    cpu = sorted(f for f in flags if f == "avx2" or f.startswith("avx512") or "vnni" in f)
    body = (
        "keras.applications MobileNetV2 224 (random weights) converted by TensorFlow's own converter (no edgeq code), "
        "timed with ai-edge-litert at 1 thread.\n\n"
        f"- CPU int8-relevant flags: {', '.join(cpu) or 'none'}\n"
        f"- load average at start / end: {' '.join(load0)} / {' '.join(Path('/proc/loadavg').read_text().split()[:3])}\n\n"
        "| kernels | fp32 p50 | int8 p50 | int8/fp32 |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    append_results("int8 vs fp32 kernels on this CPU (issue 5 of 7)", "python bench/int8_kernels_probe.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
