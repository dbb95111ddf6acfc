"""Shared by bench/ops_bench.py and bench/ops_regression_bench.py: models (Keras, seeded, random weights, nothing
downloaded), the real `edgeq` CLI as a subprocess, and the load average."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _int8(tf, model, shape: tuple, seed: int, batches: int) -> bytes:
    import numpy as np

    def rep():
        rng = np.random.default_rng(seed)
        for _ in range(batches):
            yield [rng.uniform(-1, 1, (1, *shape)).astype(np.float32)]

    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = rep
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = c.inference_output_type = tf.int8
    return c.convert()


def mobilenet(out: Path, size: int, alpha: float, calib: int = 20) -> dict[str, Path]:
    """keras.applications MobileNetV2 (weights=None, 10 classes, seed 0): fp32 and full-integer int8 (per-channel,
    int8 I/O, `calib` random uniform(-1, 1) calibration batches), as bench/int8_kernels_probe.py converts."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    m = tf.keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=alpha, weights=None, classes=10)
    stem = f"mnv2-{alpha:g}-{size}"
    paths = {"fp32": out / f"{stem}-fp32.tflite", "int8": out / f"{stem}-int8.tflite"}
    if not paths["fp32"].exists():
        paths["fp32"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    if not paths["int8"].exists():
        paths["int8"].write_bytes(_int8(tf, m, (size, size, 3), 0, calib))
    return paths


class Cli:
    """The real `edgeq` CLI (python -m edgeq ... --json) with its own EDGEQ_HOME."""

    def __init__(self, home: Path):
        self.home = home
        home.mkdir(parents=True, exist_ok=True)

    def __call__(self, *args, expect: int | None = 0, timeout: float = 3600) -> tuple[float, int, dict]:
        env = {**os.environ, "EDGEQ_HOME": str(self.home)}
        env.pop("EDGEQ_DEVICES", None)
        env.pop("EDGEQ_HISTORY_DB", None)
        t = time.perf_counter()
        p = subprocess.run(
            [sys.executable, "-m", "edgeq", *map(str, args), "--json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.home.parent,
            timeout=timeout,
        )
        wall = time.perf_counter() - t
        if expect is not None and p.returncode != expect:
            sys.exit(f"edgeq {' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        try:
            doc = json.loads(p.stdout) if p.stdout.strip() else {}
        except json.JSONDecodeError:
            doc = {"_stdout": p.stdout[-2000:]}
        doc.setdefault("_stderr", p.stderr[-2000:])
        return wall, p.returncode, doc
