"""Issue [5 of 5] numbers: the int8 hard case (PTQ, mixed precision, QAT), calibration options, and the time
of the mixed-precision search on the Fashion-MNIST cnn.

Run:  python bench/quant_bench.py [--skip-cnn] [--qat-epochs 2]
Needs the Debian package dataset-fashion-mnist. Each pipeline runs through the real CLI
(`python -m edgeq run --json`) in a fresh EDGEQ_HOME; accuracy is the validate stage's (test split,
ai-edge-litert interpreter), latency is the median batch-1 invoke on this machine with 1 thread.

Hard case: pipelines/fashion-mnist-outlier.yaml (a depthwise-separable CNN whose penultimate activation
has two outlier channels). Targets: plain int8 loses > 2 points; accuracy_budget 0.005 brings the drop
within 0.5 points with >= 80% of the layers int8 and size <= 0.40 x fp32; QAT drop < 0.5 points, all int8
(the QAT row is included when the pipeline supports train.qat). Search on the cnn: <= 60 s on 2 cores.
Writes a dated section to bench/RESULTS.md (with the load average: the machine may be shared).
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
sys.path.insert(0, str(REPO))
HARD = REPO / "pipelines" / "fashion-mnist-outlier.yaml"
CNN = REPO / "pipelines" / "fashion-mnist-cnn.yaml"


def qat_supported() -> bool:
    from edgeq.config import TrainSpec

    return "qat" in TrainSpec.model_fields


def run(doc: dict, base: Path, home: str, workdir: Path, name: str) -> tuple[int, dict | None, str, float]:
    """Write doc next to the original pipeline's folder semantics (paths resolve against `base`) and run it."""
    p = base / f".bench-{name}-{os.getpid()}.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    t = time.perf_counter()
    try:
        r = subprocess.run(
            [sys.executable, "-m", "edgeq", "run", str(p), "--json"],
            cwd=workdir,
            capture_output=True,
            text=True,
            env={**os.environ, "EDGEQ_HOME": home},
        )
    finally:
        p.unlink(missing_ok=True)
    wall = time.perf_counter() - t
    try:
        out = json.loads(r.stdout) if r.stdout.strip() else None
    except json.JSONDecodeError:
        out = None
    return r.returncode, out, r.stderr, wall


def measure(artifact: str) -> dict:
    from edgeq.stages import interpreter as rt
    from edgeq.stages.mixed import int8_fraction, latency_us

    blob = Path(artifact).read_bytes()
    frac, n8, nops = int8_fraction(blob)
    with tempfile.TemporaryDirectory() as d:
        lat = latency_us(rt.pick(), blob, Path(d), min_runs=2000, min_seconds=1.0)
    return {"latency_us": lat, "int8_fraction": frac, "float_ops": nops - n8, "ops": nops}


def variant_rows(doc: dict, label: str) -> list[dict]:
    rows = []
    fp = next(v for v in doc["variants"].values() if v["type"] == "fp32")
    for key, v in doc["variants"].items():
        m = measure(v["artifact"])
        mp = v.get("mixed_precision") or {}
        rows.append(
            {
                "case": label,
                "variant": key,
                "accuracy": v["accuracy"],
                "drop_pts": v["accuracy_drop"] * 100,
                "size": v["size_bytes"],
                "size_ratio": v["size_bytes"] / fp["size_bytes"],
                **m,
                "float_layers": ", ".join(f["layer"] for f in mp.get("float_layers", [])),
                "search_s": mp.get("search_seconds"),
                "budget_met": mp.get("met"),
                "calib": doc["stages"]["quantize"].get(key, {}).get("histogram_calibration", {}).get("method", ""),
            }
        )
    return rows


def calib_notes(doc: dict, label: str) -> list[str]:
    out = []
    for key, st in doc["stages"]["quantize"].items():
        h = st.get("histogram_calibration")
        if h:
            out.append(
                f"{label} {key}: {h['method']}{' ' + str(h['percentile']) if 'percentile' in h else ''} changed "
                f"{h['tensors']} activation ranges, keeping {h['mean_range_kept']:.1%} of the min/max range on average"
            )
    return out


def qat(pipeline: Path, label: str, epochs: int, home: str, work: Path, rows: list, notes: list) -> None:
    """The QAT row of a pipeline (train cached from the earlier run), when this edgeq has train.qat."""
    if not qat_supported():
        notes.append(f"{label}: skipped, this edgeq has no train.qat")
        return
    doc = yaml.safe_load(pipeline.read_text())
    doc["train"]["qat"] = {"epochs": epochs}
    doc["quantize"]["variants"] = [
        v for v in doc["quantize"]["variants"] if v["type"] in ("fp32", "int8") and "accuracy_budget" not in v
    ]
    doc["validate"] = {"gates": {}}
    code, res, err, wall = run(doc, pipeline.parent, home, work, "qat")
    if res is not None and code == 0:
        rows += [r for r in variant_rows(res, label) if r["variant"] == "int8-qat"]
        notes.append(f"{label}: QAT {epochs} epoch(s), run {wall:.0f} s (train cached)")
    else:
        msg = (res or {}).get("message") or " ".join(err.strip().splitlines()[-2:])
        notes.append(f"{label}: the run failed (exit {code}): {msg}")


def worst_case_search(cdoc: dict) -> str:
    """The whole search on the cnn, as if no set of float layers met the budget: every candidate measured
    alone, then all of them added one by one (int8 meets 0.5 points there, so the pipeline's search stops at once)."""
    from edgeq.config import VariantSpec, load_pipeline
    from edgeq.data import datasets as data_mod
    from edgeq.stages.mixed import search

    spec, base = load_pipeline(CNN)
    ds = data_mod.load(spec.data, base, spec.seed)
    out = Path(cdoc["stages"]["quantize"]["int8-budget"]["output"])
    v = VariantSpec.model_construct(type="int8", accuracy_budget=-1.0)  # unreachable on purpose
    t = time.perf_counter()
    _, rep = search(
        (out.parent / "calibrated.tflite").read_bytes(),
        out.read_bytes(),
        Path(cdoc["variants"]["fp32"]["artifact"]).read_bytes(),
        v,
        (ds.x_val, ds.y_val),
    )
    wall = time.perf_counter() - t
    n = sum(c["applied"] for c in rep["candidates"])
    return (
        f"cnn worst-case search (budget never met): {wall:.1f} s for {n} layers measured alone + "
        f"{len(rep['steps'])} greedy steps on {rep['val_samples']} validation rows each (target <= 60 s)"
    )


def table(rows: list[dict]) -> list[str]:
    out = [
        "| case | variant | accuracy | drop (pts) | size (bytes) | size / fp32 | latency µs (1 thr) "
        "| ops int8 | ops float | layers kept float | search s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        search = "" if r["search_s"] is None else f"{r['search_s']:.1f}"
        out.append(
            f"| {r['case']} | {r['variant']} | {r['accuracy']:.4f} | {r['drop_pts']:+.2f} | {r['size']:,} | "
            f"{r['size_ratio']:.3f} | {r['latency_us']:.1f} | {r['int8_fraction']:.0%} | {r['float_ops']}/{r['ops']} | "
            f"{r['float_layers'] or '-'} | {search} |"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-cnn", action="store_true", help="only the hard case")
    ap.add_argument("--qat-epochs", type=int, default=2)
    args = ap.parse_args()
    load_before = os.getloadavg()
    notes: list[str] = []
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        home, work = str(Path(tmp) / "home"), Path(tmp)
        # ---- hard case: plain int8, mixed precision, histogram calibration
        hard = yaml.safe_load(HARD.read_text())
        q = hard["quantize"]["variants"]
        int8 = next(v for v in q if v["type"] == "int8" and "accuracy_budget" not in v)
        q += [
            {**int8, "name": "int8-percentile", "calibration_method": "percentile"},
            {**int8, "name": "int8-p99.9", "calibration_method": "percentile", "calibration_percentile": 99.9},
            {**int8, "name": "int8-mse", "calibration_method": "mse"},
            {**int8, "name": "int8-balanced", "calibration_selection": "class_balanced"},
        ]
        hard["validate"] = {"gates": {}}  # measure, don't gate
        code, doc, err, wall = run(hard, HARD.parent, home, work, "hard")
        if doc is None or code != 0:
            sys.exit(f"hard case failed ({code}):\n{err[-3000:]}")
        rows += variant_rows(doc, "hard case")
        notes.append(f"hard case run (train + {len(q)} variants): {wall:.0f} s")
        notes += calib_notes(doc, "hard case")
        qat(HARD, "hard case + QAT", args.qat_epochs, home, work, rows, notes)
        # ---- the Fashion-MNIST cnn: time of the mixed-precision search, and calibration options
        if not args.skip_cnn:
            cnn = yaml.safe_load(CNN.read_text())
            base8 = next(v for v in cnn["quantize"]["variants"] if v["type"] == "int8")
            cnn["quantize"]["variants"] = [
                {"type": "fp32"},
                base8,
                {**base8, "name": "int8-budget", "accuracy_budget": 0.005},
                {**base8, "name": "int8-budget0", "accuracy_budget": 0.0},  # forces the full search unless int8 >= fp32
                {**base8, "name": "int8-percentile", "calibration_method": "percentile"},
                {**base8, "name": "int8-p99.9", "calibration_method": "percentile", "calibration_percentile": 99.9},
                {**base8, "name": "int8-mse", "calibration_method": "mse"},
                {**base8, "name": "int8-balanced", "calibration_selection": "class_balanced"},
                {**base8, "name": "int8-first", "calibration_selection": "first"},
            ]
            cnn["validate"] = {"gates": {}}
            code, cdoc, err, wall = run(cnn, CNN.parent, home, work, "cnn")
            if cdoc is None or code != 0:
                sys.exit(f"cnn failed ({code}):\n{err[-3000:]}")
            rows += variant_rows(cdoc, "fashion-mnist-cnn")
            for key in ("int8-budget", "int8-budget0"):
                st = cdoc["stages"]["quantize"][key]
                mp = st["mixed_precision"]
                notes.append(
                    f"cnn {key}: quantize stage {st['seconds']:.1f} s (calibration + search), search alone "
                    f"{mp['search_seconds']:.1f} s, {len(mp['steps'])} greedy step(s), "
                    f"{sum(c['applied'] for c in mp['candidates'])} layer(s) measured alone, "
                    f"{mp['val_samples']} validation rows per measurement, met={mp['met']}"
                )
            notes.append(f"cnn run (train + {len(cnn['quantize']['variants'])} variants): {wall:.0f} s")
            notes += calib_notes(cdoc, "cnn")
            notes.append(worst_case_search(cdoc))
            qat(CNN, "fashion-mnist-cnn + QAT", args.qat_epochs, home, work, rows, notes)
    load_after = os.getloadavg()
    lines = table(rows)
    lines.append("")
    lines += [f"- {n}" for n in notes]
    lines.append(
        f"- load average before / after: {', '.join(f'{x:.2f}' for x in load_before)} / "
        f"{', '.join(f'{x:.2f}' for x in load_after)} (2 cores shared with other work: latencies and "
        "times are upper bounds)"
    )
    text = "\n".join(lines)
    print(text)
    append_results("Quantization quality (issue 5 of 5)", " ".join(["python bench/quant_bench.py", *sys.argv[1:]]), text)


if __name__ == "__main__":
    main()
