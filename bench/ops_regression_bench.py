"""Issue 23 Done when 3: an injected regression. `edgeq compare --ops` must name the node that got slower, and no
node whose interval contains 1, in >= 19 of 20 seeded trials on the local board.

Run:  python bench/ops_regression_bench.py [--trials 20] [--runs 30] [--sessions 3]

Per trial (seed s): model A = Input 64x64x3 -> Conv 3x3/2 16 -> Conv 3x3 32 -> Conv 3x3 32 (the target) ->
GlobalAveragePooling -> Dense 10, all relu, Keras weights seeded with s; model B = the same with the target conv's
filters doubled (32 -> 64; the layers before it get the same weights, seed s). Both fp32, TensorFlow's converter.
`edgeq bench A|B -t local --threads 1 --min-seconds 0 --ops --runs R --sessions S` (order A B on even trials, B A on
odd ones), then `edgeq compare --ops A_run B_run --json` (default threshold 1.1). Counts per trial: the target node
flagged as slower; flagged nodes downstream of it (the pooling and dense read twice the channels: a real slowdown);
flagged nodes upstream of it (identical in A and B: false alarms); and flagged nodes whose interval contains 1
(compare should never do that). The machine is shared: the load average is recorded per trial.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import append_results  # noqa: E402
from _opskit import Cli, loadavg  # noqa: E402

TARGET = 2  # the third conv (model op index 2: CONV_2D, CONV_2D, CONV_2D, MEAN, FULLY_CONNECTED)


def build(out: Path, seed: int, wide: bool) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    inp = tf.keras.Input((64, 64, 3))
    x = tf.keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inp)
    x = tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = tf.keras.layers.Conv2D(64 if wide else 32, 3, padding="same", activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    m = tf.keras.Model(inp, tf.keras.layers.Dense(10)(x))
    p = out / f"{'b' if wide else 'a'}-seed{seed}.tflite"
    p.write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    return p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--sessions", type=int, default=3)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgeq-ops-regression-"))
    t0 = time.perf_counter()
    models = [(build(work, s, False), build(work, s, True)) for s in range(a.trials)]
    build_s = time.perf_counter() - t0
    cli = Cli(work / "home")
    bench = ["-t", "local", "--threads", 1, "--min-seconds", 0, "--ops", "--runs", a.runs, "--sessions", a.sessions]
    rows, passed, named = [], 0, 0
    t0 = time.perf_counter()
    for s, (ma, mb) in enumerate(models):
        load = loadavg()
        run: dict[str, str] = {}
        for k, m in (("a", ma), ("b", mb)) if s % 2 == 0 else (("b", mb), ("a", ma)):
            _, _, doc = cli("bench", m, "--name", "regr", *bench)
            run[k] = doc["history_run"]
        _, rc, cmp = cli("compare", run["a"], run["b"], "--ops", expect=None)
        (d,) = cmp["diffs"]
        target = next(o for o in d["ops"] if o["model_op"] and o["model_op"].startswith(f"{TARGET} "))
        order = [o["node"] for o in d["ops"]]
        ti = order.index(target["node"])
        flagged = [o for o in d["ops"] if o["flagged"]]
        up = [o for o in flagged if order.index(o["node"]) < ti]
        down = [o for o in flagged if order.index(o["node"]) > ti]
        with_one = [o for o in flagged if o["ci_low"] is not None and o["ci_low"] <= 1 <= o["ci_high"]]
        hit = target["flagged"] and target["ratio"] > 1
        ok = hit and not with_one
        named += hit
        passed += ok

        def desc(os_: list[dict]) -> str:
            return ", ".join(f"{o['node']} {o['op']} x{o['ratio']:.2f} [{o['ci_low']:.2f}, {o['ci_high']:.2f}]" for o in os_)

        rows.append(
            f"| {s} | {target['node']} x{target['ratio']:.2f} [{target['ci_low']:.2f}, {target['ci_high']:.2f}] "
            f"share {target['share']} | {'yes' if hit else 'NO'} | {desc(down) or '-'} | {desc(up) or '-'} | "
            f"{desc(with_one) or '-'} | {d['invoke_ratio']:.2f} | {'pass' if ok else 'FAIL'} | {load} |"
        )
        print(rows[-1], flush=True)
    loop_s = time.perf_counter() - t0
    body = (
        f"Done when 3: injected regression, {a.trials} seeded trials on the local board; per trial two `edgeq bench "
        f"--ops --runs {a.runs} --sessions {a.sessions} --threads 1 --min-seconds 0` and one `edgeq compare --ops` "
        f"(threshold 1.1). Model building {build_s:.0f} s, trials {loop_s:.0f} s ({loop_s / a.trials:.0f} s each).\n\n"
        f"- **target conv named (flagged, ratio > 1) and no flagged node whose interval contains 1: {passed} of "
        f"{a.trials}** (target: >= 19 of 20); target named: {named} of {a.trials}\n"
        f"- trials with a flagged node upstream of the target (unchanged ops: false alarm): "
        f"{sum(1 for r in rows if r.split(' | ')[4] != '-')}\n\n"
        "| seed | target node, ratio [interval], share | named | flagged downstream (real: 2x channels) | "
        "flagged upstream (false alarm) | flagged with 1 in interval | Invoke ratio | | load avg |\n"
        "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    print(body)
    append_results(
        "compare --ops names an injected regression (issue 23, Done when 3)",
        "python bench/ops_regression_bench.py " + " ".join(sys.argv[1:]),
        body,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
