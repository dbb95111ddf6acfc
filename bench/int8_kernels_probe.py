"""Is int8 slower than fp32 on this x86 because of edgeq's conversion, or because of the CPU's int8 kernels?

Run: python bench/int8_kernels_probe.py
     python bench/int8_kernels_probe.py --layers   # one-layer models: which kernel makes int8 slower
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


# one-layer models shaped like MobileNetV2 224's own layers: (name, input HxWxC, layer)
LAYERS = [
    ("pointwise 1x1 conv 56x56x24 -> 144 (expand)", (56, 56, 24), ("conv", 144, 1)),
    ("pointwise 1x1 conv 14x14x96 -> 576 (expand)", (14, 14, 96), ("conv", 576, 1)),
    ("pointwise 1x1 conv 7x7x320 -> 1280 (last)", (7, 7, 320), ("conv", 1280, 1)),
    ("depthwise 3x3 56x56x144", (56, 56, 144), ("dw", 0, 3)),
    ("depthwise 3x3 14x14x576", (14, 14, 576), ("dw", 0, 3)),
    ("full 3x3 conv 112x112x3 -> 32 stride 2 (first)", (224, 224, 3), ("conv", 32, 3)),
]


def convert_layer(out: Path, name: str, shape: tuple, layer: tuple) -> dict[str, Path]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    kind, filters, k = layer
    inp = tf.keras.Input(shape)
    if kind == "conv":
        x = tf.keras.layers.Conv2D(filters, k, strides=2 if k == 3 else 1, padding="same", activation="relu6")(inp)
    else:
        x = tf.keras.layers.DepthwiseConv2D(k, padding="same", activation="relu6")(inp)
    m = tf.keras.Model(inp, x)

    def rep():
        rng = np.random.default_rng(0)
        for _ in range(10):
            yield [rng.uniform(-1, 1, (1, *shape)).astype(np.float32)]

    slug = "".join(c if c.isalnum() else "_" for c in name)[:40]
    paths = {"fp32": out / f"{slug}-fp32.tflite", "int8": out / f"{slug}-int8.tflite"}
    paths["fp32"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    c = tf.lite.TFLiteConverter.from_keras_model(m)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = rep
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = c.inference_output_type = tf.int8
    paths["int8"].write_bytes(c.convert())
    return paths


def layers_main() -> int:
    load0 = Path("/proc/loadavg").read_text().split()[:3]
    out = Path(tempfile.mkdtemp(prefix="edgeq-int8-layers-"))
    rows = []
    for name, shape, layer in LAYERS:
        paths = convert_layer(out, name, shape, layer)
        f: list[float] = []
        i: list[float] = []
        for _ in range(5):  # interleaved A B A B: a drift of the host's speed hits both
            f.append(p50_ms(paths["fp32"], False, runs=200))
            i.append(p50_ms(paths["int8"], False, runs=200))
        fm, im = sorted(f)[2], sorted(i)[2]
        rows.append(f"| {name} | {fm * 1e3:.0f} us | {im * 1e3:.0f} us | {im / fm:.2f} |")
        print(rows[-1], flush=True)
    flags = set(Path("/proc/cpuinfo").read_text().split())
    cpu = sorted(f for f in flags if f == "avx2" or f.startswith("avx512") or "vnni" in f)
    body = (
        "One-layer models shaped like MobileNetV2 224's layers (relu6, random weights), converted by TensorFlow's "
        "converter (fp32; full-integer int8 with per-channel weights and int8 I/O), timed with ai-edge-litert's "
        "default XNNPACK at 1 thread: median of 5 interleaved rounds of 200 invokes.\n\n"
        f"- CPU int8-relevant flags: {', '.join(cpu) or 'none'}\n"
        f"- load average at start / end: {' '.join(load0)} / {' '.join(Path('/proc/loadavg').read_text().split()[:3])}\n\n"
        "| layer | fp32 p50 | int8 p50 | int8/fp32 |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    title = "int8 vs fp32, one layer at a time, on this CPU (issue 5 of 7)"
    append_results(title, "python bench/int8_kernels_probe.py --layers", body)
    return 0


def main() -> int:
    if "--layers" in sys.argv[1:]:
        return layers_main()
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
