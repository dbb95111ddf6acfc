"""Issue [5 of 7]: MobileNetV2 224 (alpha 1.0) int8 on the emulated Raspberry Pi (aarch64 under qemu-user).

Run (as root; the farm needs debootstrap, chroot and binfmt_misc):
    python bench/aarch64_mobilenet_bench.py [--per-class 60] [--max-test 40] [--runs 10]

What it does, each step the wall time of the real `edgeq` CLI:
1. writes a small Fashion-MNIST image-folder tree (edgeq.tools.fashion_mnist_images, --per-class images of each
   class per split), and runs a pipeline on the host: data.source images at 224x224 RGB, builtin mobilenet_v2
   (alpha 1.0, random init, nothing downloaded), 1 epoch on the small train split (the point is the network's
   shape on the board, not its accuracy), variants fp32, int8 (per-channel) and int8pt (per-tensor);
2. deploys them to the emulated board's two Python environments (`rpi`: tflite-runtime 2.14.0,
   `rpi-litert`: ai-edge-litert) through a pipeline with deploy + benchmark + the on-board accuracy check on the
   test split (--max-test images), 1 session;
3. records per device and variant: p50 latency on the board, the host's p50 (ai-edge-litert, 1 thread) and the
   int8/fp32 ratio of both, and board vs host accuracy on the same images.
Emulated: qemu-user translates every aarch64 instruction, so board latencies are tens of times a real Pi's and
their int8/fp32 ratio says how the runtime's kernels compare under emulation, not on silicon.
Appends a section to bench/RESULTS.md (command, date, machine, load average).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import append_results  # noqa: E402
from aarch64_bench import Bench, devices_yaml, loadavg  # noqa: E402

# device -> variants deployed there (tflite-runtime 2.14's arm64 per-channel FULLY_CONNECTED crashed on the mlp
# before: the per-channel int8 is tried on the litert env only, the per-tensor one on both)
VARIANTS = {"rpi": ["fp32", "int8pt"], "rpi-litert": ["fp32", "int8", "int8pt"]}


def pipeline(work: Path, images: Path, devices: Path | None, args) -> Path:
    doc: dict = {
        "name": "aarch64-mobilenetv2-224",
        "seed": 1,
        "data": {
            "source": "images",
            "path": str(images),
            "image_size": [224, 224],
            "color": "rgb",
            "preprocess": "mobilenet",
            "validation_split": 0.1,
            "max_test": args.max_test,
        },
        "model": {"builtin": "mobilenet_v2", "alpha": 1.0},
        "train": {"epochs": 1, "batch_size": 32, "optimizer": "adam", "learning_rate": 0.001},
        "quantize": {
            "variants": [
                {"type": "fp32"},
                {"type": "int8", "calibration_samples": 100, "io": "int8"},
                {"type": "int8", "name": "int8pt", "calibration_samples": 100, "io": "int8", "per_channel": False},
            ]
        },
    }
    if devices is not None:
        doc["devices"] = str(devices)
        doc["deploy"] = {"targets": list(VARIANTS), "variants": ["fp32", "int8", "int8pt"]}
        doc["benchmark"] = {
            "runs": args.runs,
            "warmup": 1,
            "min_seconds": 0.0,
            "sessions": 1,
            "threads": [1],
            "accuracy_check": True,
            "accuracy_tolerance": 0.05,
        }
    p = work / ("mnv2-fleet.yaml" if devices else "mnv2.yaml")
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def host_p50_ms(model: str, runs: int = 30) -> float:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=model, num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    x = np.zeros(d["shape"], d["dtype"])
    ts = []
    for _ in range(runs + 3):
        it.set_tensor(d["index"], x)
        t = time.perf_counter()
        it.invoke()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts[3:])) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", type=int, default=60, help="images per class and split in the image tree")
    ap.add_argument("--max-test", type=int, default=40, help="test images (the on-board accuracy check runs them all)")
    ap.add_argument("--runs", type=int, default=10, help="timed invokes per variant on the board")
    args = ap.parse_args()
    from edgeq.testing import aarch64

    load_start = loadavg()
    work = Path(tempfile.mkdtemp(prefix="edgeq-mnv2-bench-"))
    b = Bench(work / "home")
    images = work / "images"
    subprocess.run(
        [sys.executable, "-m", "edgeq.tools.fashion_mnist_images", str(images), "--per-class", str(args.per_class)], check=True
    )
    rootfs = aarch64.ensure_rootfs(log=lambda m: print(m, file=sys.stderr, flush=True))
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    board = aarch64.start_board(rootfs, authorized_pubkey=key.with_suffix(".pub"), key_file=key)
    try:
        wall, run = b.edgeq("run", pipeline(work, images, None, args))
        b.row("host: edgeq run (train 1 epoch + fp32/int8/int8pt, no fleet)", f"{wall:.1f} s")
        art = {k: v["artifact"] for k, v in run["variants"].items()}
        size = {k: Path(v).stat().st_size for k, v in art.items()}
        b.row("artifact sizes", ", ".join(f"{k} {s / 1e6:.2f} MB" for k, s in size.items()))
        host = {k: host_p50_ms(v) for k, v in art.items()}
        b.row(
            "host p50, ai-edge-litert 1 thread (this x86)",
            ", ".join(f"{k} {v:.2f} ms" for k, v in host.items())
            + f"; int8/fp32 {host['int8'] / host['fp32']:.2f}, int8pt/fp32 {host['int8pt'] / host['fp32']:.2f}",
        )
        devices = devices_yaml(work, board)
        doc = yaml.safe_load(pipeline(work, images, devices, args).read_text())
        # one pipeline per device: each gets only the variants its runtime is known to run
        for dev, variants in VARIANTS.items():
            doc["deploy"].update(targets=[dev], variants=variants)
            doc["benchmark"]["variants"] = variants
            p = work / f"mnv2-{dev}.yaml"
            p.write_text(yaml.safe_dump(doc, sort_keys=False))
            wall, m = b.edgeq("run", p)
            b.row(f"{dev}: edgeq run with deploy + benchmark + accuracy check (train/quantize cached)", f"{wall:.1f} s")
            p50 = {r["variant"]: r["latency_ms"]["p50"] for r in m["benchmarks"] if r.get("ok")}
            rt = next((f"{r['runtime']['name']} {r['runtime']['version']}" for r in m["benchmarks"] if r.get("ok")), "?")
            ratio = "; ".join(f"{v}/fp32 {p50[v] / p50['fp32']:.2f}" for v in p50 if v != "fp32" and "fp32" in p50)
            b.row(
                f"{dev}: board p50, 1 thread, {args.runs} runs ({rt})",
                ", ".join(f"{k} {v:.1f} ms" for k, v in p50.items()) + (f"; {ratio}" if ratio else ""),
            )
            for a in m["stages"].get("benchmark_accuracy", []):
                b.row(
                    f"{dev}: on-board accuracy of {a['variant']} ({args.max_test} test images)",
                    f"{a['board_accuracy']:.4f} vs host validate {a['validate_accuracy']:.4f}",
                )
    finally:
        board.stop()
    body = (
        "MobileNetV2 224 (alpha 1.0, random init + 1 epoch on a small Fashion-MNIST image tree) on the emulated "
        "board: arm64 Debian bookworm under qemu-user, real sshd on loopback.\n\n"
        f"- load average at start / end: {load_start} / {loadavg()} (the machine is shared)\n\n| step | measured |\n|---|---|\n"
    )
    body += "".join(f"| {w} | {v} |\n" for w, v in b.rows)
    cmd = f"python bench/aarch64_mobilenet_bench.py --per-class {args.per_class} --max-test {args.max_test} --runs {args.runs}"
    append_results("MobileNetV2 224 on the emulated aarch64 board (issue 5 of 7)", cmd, body)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
