"""What the board-state sampler costs: the agent's bench mean with the sampler on vs off, interleaved.

Two models: the harness-floor no-op model (edgeq.agent.floor, about a microsecond per invoke: the worst case,
where a wake of the sampler thread is largest next to an invoke) and a small real CNN (Conv 3x3x16 on 32x32x3,
pool, Dense 10; fp32, built with TensorFlow in a child process so TensorFlow is not loaded where we measure).
Each round runs, per model, one session with the sampler on and one with it off, the order alternating by
round (on off, off on, ...), in this process through the agent's own entry point (edgeq.agent.agent.main).

This VM has no thermal zones and no cpufreq, so without help the sampler thread would not start at all (there
is nothing to read) and "on" would cost nothing by construction. The bench therefore points the sampler at
real sysfs attributes that exist here (cpu topology files: numeric, read through the same os.pread path) at
its default 1 s interval, and also at 0.1 s (ten times the default) to show how the cost scales. A Pi's
thermal driver may take longer per read than these attributes; the count of reads per second is the same.

    python bench/sampler_bench.py [--rounds 8] [--seconds 3] [--toggle 120]

Sessions of seconds each cannot resolve 1 % on a host whose speed wanders by +-20 % over a second or so (this
VM does, measured by the same interpreter in back-to-back 0.25 s windows). --toggle S adds a design that can:
one interpreter, loaded once, timed invoke after invoke for S seconds per model, with the sampler thread started
and stopped every 0.25 s (on off, off on, ... by pair), at a 0.05 s interval (20 x the agent's default wake
rate: about 5 wakes per on-block). Adjacent blocks see the same host speed, so the per-pair ratio of the block
means isolates the sampler; the median over the pairs is the figure. The loop is the agent's own: time.perf_counter
around interpreter.invoke(), the sampler being edgeq.agent.boardstate.Sampler, reading the same stand-in files.
"""

from __future__ import annotations

import argparse
import base64
import glob
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import append_results  # noqa: E402

from edgeq.agent import agent, boardstate  # noqa: E402
from edgeq.agent.floor import NOOP_MODEL_B64  # noqa: E402

_CNN = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
tf.keras.utils.set_random_seed(0)
inp = tf.keras.Input((32, 32, 3))
x = tf.keras.layers.Conv2D(16, 3, activation="relu")(inp)
x = tf.keras.layers.MaxPooling2D()(x)
x = tf.keras.layers.Flatten()(x)
model = tf.keras.Model(inp, tf.keras.layers.Dense(10)(x))
open(sys.argv[1], "wb").write(tf.lite.TFLiteConverter.from_keras_model(model).convert())
"""


def _session(model: Path, work: Path, seconds: float, interval: float) -> tuple[float, float]:
    controls = json.dumps({"state_interval_s": interval})
    argv = ["bench", "--workdir", str(work), "--model", str(model), "--runs", "1", "--warmup", "20"]
    code, doc = agent.main([*argv, "--min-seconds", f"{seconds:g}", "--controls", controls])
    if code != 0:
        raise SystemExit(f"agent bench failed: {doc}")
    during = doc["state"]["during"]
    if interval and seconds >= 2 * interval and during["samples"] < 2:  # it woke at least once (wakes slip under load)
        raise SystemExit(f"the sampler did not run: {during}")
    return float(doc["latency_s"]["mean"]), float(doc["latency_s"]["p50"])


def _row(label: str, interval: float, on: list[tuple[float, float]], off: list[tuple[float, float]]) -> str:
    cells = []
    for i in (0, 1):  # mean, p50
        a, b = statistics.median(x[i] for x in on), statistics.median(x[i] for x in off)
        cells += [f"{b * 1e6:.3f} us", f"{a * 1e6:.3f} us", f"{(a / b - 1) * 100:+.2f} %"]
    ratios = sorted(x[0] / y[0] - 1 for x, y in zip(on, off, strict=True))
    paired = statistics.median(ratios)  # each round's on/off pair ran back to back: the drift between rounds cancels
    return f"| {label} | {interval:g} s | " + " | ".join(cells) + f" | {paired:+.2%} | {ratios[0]:+.1%} .. {ratios[-1]:+.1%} |"


def _wake_cost(files: list[str]) -> float:
    """Seconds one sampler wake spends reading (the thread's whole work per interval), median of 5 x 2000."""
    sampler = boardstate.Sampler(1.0)
    per = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(2000):
            sampler.sample()
        per.append((time.perf_counter() - t) / 2000)
    sampler.stop()
    return statistics.median(per)


def _toggle(model: Path, seconds: float, interval: float = 0.05, block: float = 0.25) -> tuple[float, float, float, int]:
    """(median of per-pair mean on/off - 1, overall mean on/off - 1, the p50 on/off - 1, pairs): see the module doc."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model), num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
    for _ in range(50):
        it.invoke()
    pairs, on_all, off_all = [], [], []
    end, k = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        means = {}
        for state in (True, False) if k % 2 == 0 else (False, True):
            sampler = boardstate.Sampler(interval) if state else None
            if sampler:
                sampler.start()
            ts, stop = [], time.perf_counter() + block
            while True:
                t = time.perf_counter()
                it.invoke()
                t1 = time.perf_counter()
                ts.append(t1 - t)
                if t1 >= stop:
                    break
            if sampler:
                doc = sampler.stop()
                if doc["samples"] < 2:
                    raise SystemExit(f"the sampler did not run: {doc}")
            means[state] = statistics.fmean(ts)
            (on_all if state else off_all).extend(ts)
        pairs.append(means[True] / means[False] - 1)
        k += 1
    return (
        statistics.median(pairs),
        statistics.fmean(on_all) / statistics.fmean(off_all) - 1,
        statistics.median(on_all) / statistics.median(off_all) - 1,
        len(pairs),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--toggle", type=float, default=0.0, help="seconds per model of the in-interpreter toggle design")
    a = ap.parse_args()
    files = sorted(glob.glob("/sys/devices/system/cpu/cpu*/topology/core_id"))
    boardstate.thermal_paths = lambda: files  # stand-ins for thermal zones: see the module doc
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "noop.tflite").write_bytes(base64.b64decode(NOOP_MODEL_B64))
        subprocess.run([sys.executable, "-c", _CNN, str(d / "cnn.tflite")], check=True)  # noqa: S603 - fixed argv
        models = {"no-op (harness floor)": d / "noop.tflite", "small CNN 32x32x3 fp32": d / "cnn.tflite"}
        load0 = Path("/proc/loadavg").read_text().split()[:3]
        toggles = []
        for label, path in models.items() if a.toggle else ():
            paired, mean, p50, n = _toggle(path, a.toggle)
            toggles.append(f"| {label} | {n} | {paired:+.3%} | {mean:+.3%} | {p50:+.3%} |")
            print(toggles[-1], flush=True)
        rows = []
        for label, path in models.items():
            for interval in (1.0, 0.1):
                on, off = [], []
                for r in range(a.rounds):
                    order = (interval, 0.0) if r % 2 == 0 else (0.0, interval)
                    for iv in order:
                        (on if iv else off).append(_session(path, d / "w", a.seconds, iv))
                rows.append(_row(label, interval, on, off))
                print(rows[-1], flush=True)
        load1 = Path("/proc/loadavg").read_text().split()[:3]
    wake = _wake_cost(files)
    body = (
        f"- {a.rounds} rounds x {a.seconds:g} s sessions per model and interval, on/off interleaved (order alternating);"
        f" sampler reading {len(files)} sysfs files as stand-in thermal zones (no thermal zones or cpufreq on this VM)\n"
        f"- load average before: {' '.join(load0)}, after: {' '.join(load1)} \n\n"
        f"- one sampler wake (reading {len(files)} files) costs {wake * 1e6:.1f} us of CPU: at the default 1 s interval"
        f" {wake * 100:.4f} % of one core, at 0.1 s {wake * 1000:.4f} % (the wake's whole work; measured in a loop)\n\n"
        "| model | sampler interval | mean off | mean on | mean on vs off | p50 off | p50 on | p50 on vs off"
        " | median of per-round mean on/off | per-round range |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    if toggles:
        body += (
            f"\nToggle design (--toggle {a.toggle:g}: one interpreter per model, sampler started/stopped every 0.25 s, "
            "0.05 s interval = 20 x the default wake rate; see the script's doc):\n\n"
            "| model | on/off block pairs | median of per-pair mean on/off | mean on / mean off, all blocks | "
            "p50 on / p50 off |\n|---|---|---|---|---|\n" + "\n".join(toggles) + "\n"
        )
    cmd = f"python bench/sampler_bench.py --rounds {a.rounds} --seconds {a.seconds:g}"
    cmd += f" --toggle {a.toggle:g}" if a.toggle else ""
    append_results("Board-state sampler cost (harness mean, sampler on vs off)", cmd, body)
    print(body)


if __name__ == "__main__":
    main()
