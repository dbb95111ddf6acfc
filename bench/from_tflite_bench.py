"""Issue 14: int8 made from a float .tflite (the LiteRT quantizer, pipelines/from-tflite.yaml) vs int8 made from
the Keras model (TFLiteConverter, pipelines/fashion-mnist-cnn.yaml): same trained model, same data, same 500
calibration rows. Target: test accuracies within 0.3 points.

Run:  python bench/from_tflite_bench.py                         # full Fashion-MNIST (trains the CNN: minutes)
      python bench/from_tflite_bench.py --max-train 2000 --epochs 1 --no-record   # a smoke run of the same flow
Steps, each the real CLI/tool in a subprocess: `edgeq run` of fashion-mnist-cnn.yaml (fp32 + int8 by the converter),
`python -m edgeq.tools.float_tflite` (the same trained model, from the stage cache, as a float .tflite),
`edgeq run` of from-tflite.yaml on it (fp32, int8, dynamic, weight_only by the LiteRT quantizer). Fleet stages
and gates are left out. Writes a dated section to bench/RESULTS.md and prints the same table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_POINTS = 0.3


def _derive(src: Path, out: Path, a: argparse.Namespace, **changes) -> Path:
    """The shipped pipeline without fleet stages or gates, with the bench's data/training overrides."""
    doc = yaml.safe_load(src.read_text())
    for k in ("deploy", "benchmark"):
        doc.pop(k, None)
    doc["validate"] = {"gates": {}}
    if a.max_train:
        doc["data"]["max_train"] = a.max_train
    if a.epochs is not None and "train" in doc:
        doc["train"]["epochs"] = a.epochs
    doc.update(changes)
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def _run(args: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float]:
    t = time.perf_counter()
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO)
    return p, time.perf_counter() - t


def _edgeq_run(pipeline: Path, env: dict) -> tuple[dict, float]:
    p, s = _run(["-m", "edgeq", "run", str(pipeline), "--json"], env)
    if p.returncode != 0:
        sys.exit(f"edgeq run {pipeline.name} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout), s


def agreement(a: str, b: str, x) -> float:
    """Share of test rows on which two models give the same answer."""
    from edgeq.stages.interpreter import pick
    from edgeq.stages.validate import predict

    rt = pick()
    return float((predict(rt, Path(a), x) == predict(rt, Path(b), x)).mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-train", type=int, default=None, help="data.max_train for both pipelines (default: all 54,000)")
    ap.add_argument("--epochs", type=int, default=None, help="train.epochs of fashion-mnist-cnn.yaml (default: its 8)")
    ap.add_argument("--home", type=Path, default=None, help="EDGEQ_HOME (default: a fresh temporary folder)")
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to bench/RESULTS.md")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeq-from-tflite-") as tmp_s:
        tmp = Path(tmp_s)
        home = a.home or tmp / "home"
        env = {**os.environ, "EDGEQ_HOME": str(home), "PYTHONPATH": str(REPO)}
        keras_yaml = _derive(REPO / "pipelines" / "fashion-mnist-cnn.yaml", tmp / "cnn.yaml", a)
        keras_doc, keras_s = _edgeq_run(keras_yaml, env)
        float_file = tmp / "float.tflite"
        p, tool_s = _run(["-m", "edgeq.tools.float_tflite", str(keras_yaml), str(float_file)], env)
        if p.returncode != 0:
            sys.exit(f"float_tflite exited {p.returncode}:\n{p.stderr[-3000:]}")
        src = REPO / "pipelines" / "from-tflite.yaml"
        tfl_yaml = _derive(src, tmp / "from-tflite.yaml", a, model={"tflite": str(float_file)})
        tfl_doc, tfl_s = _edgeq_run(tfl_yaml, env)
        body, ok = _report(a, keras_doc, tfl_doc, (keras_s, tool_s, tfl_s), p.stdout.strip())
    print(body)
    if not a.no_record:
        cmd = "python bench/from_tflite_bench.py" + "".join(
            f" --{k.replace('_', '-')} {v}" for k, v in (("max_train", a.max_train), ("epochs", a.epochs)) if v is not None
        )
        append_results("int8 from a float .tflite (LiteRT quantizer) vs from the Keras model (TFLiteConverter)", cmd, body)
    return 0 if ok else 1


def _report(a, keras_doc: dict, tfl_doc: dict, seconds: tuple, tool_line: str) -> tuple[str, bool]:
    from edgeq.config import read_pipeline
    from edgeq.data import datasets as data_mod

    kv, tv = keras_doc["variants"], tfl_doc["variants"]
    spec = read_pipeline(Path(keras_doc["pipeline_file"]))
    ds = data_mod.load(spec.spec.data, spec.base, spec.spec.seed, Path(tempfile.gettempdir()) / "edgeq-bench-images")
    agree = agreement(kv["int8"]["artifact"], tv["int8"]["artifact"], ds.x_test)
    fp32_same = kv["fp32"]["accuracy"] == tv["fp32"]["accuracy"]
    diff = (tv["int8"]["accuracy"] - kv["int8"]["accuracy"]) * 100
    ok = abs(diff) <= TARGET_POINTS
    rows = [
        "| model | made by | test accuracy | size (bytes) | size / fp32 |",
        "|---|---|---|---|---|",
    ]
    for label, doc, key in (
        ("fp32 (Keras -> TFLiteConverter)", kv, "fp32"),
        ("int8 from the Keras model", kv, "int8"),
        ("fp32 .tflite (the file itself)", tv, "fp32"),
        ("int8 from the float .tflite", tv, "int8"),
        ("dynamic from the float .tflite", tv, "dynamic"),
        ("weight_only from the float .tflite", tv, "weight_only"),
    ):
        v = doc[key]
        by = "LiteRT quantizer" if doc is tv and key != "fp32" else "TFLiteConverter"
        ratio = v["size_bytes"] / doc["fp32"]["size_bytes"]
        rows.append(f"| {label} | {by} | {v['accuracy']:.4f} | {v['size_bytes']:,} | {ratio:.3f} |")
    lines = [
        f"- load average at the end: {open('/proc/loadavg').read().split(' ', 3)[:3]} (the machine is shared)",
        f"- test rows: {kv['int8']['test_samples']}; train rows: {a.max_train or 'all'}; calibration: 500 rows, the same in both",
        f"- wall: edgeq run (train + convert + validate) {seconds[0]:.0f} s; float_tflite (cache) {seconds[1]:.0f} s "
        f"({tool_line}); edgeq run from the .tflite {seconds[2]:.0f} s",
        "",
        *rows,
        "",
        f"int8 from the .tflite minus int8 from Keras: {diff:+.2f} points (target: within {TARGET_POINTS}); "
        f"{'met' if ok else 'NOT met'}. The two int8 models give the same answer on {agree:.2%} of test images; "
        f"the fp32 accuracies {'are identical' if fp32_same else 'DIFFER'} (same trained model).",
    ]
    return "\n".join(lines), ok


if __name__ == "__main__":
    sys.exit(main())
