"""Issue [3 of 5] numbers: the Fashion-MNIST mlp on the emulated Raspberry Pi (aarch64 under qemu-user).

Run (as root; the farm needs debootstrap, chroot and binfmt_misc):
    python bench/aarch64_bench.py                       # reuse the cached rootfs
    python bench/aarch64_bench.py --cache /tmp/farm-x   # a cold rootfs build into a separate cache dir

Steps, each timed as the wall time of the real `edgeq` CLI (a subprocess) against the board's sshd:
rootfs ensure (cold build or cache hit), cold and warm board start, devices check (first: agent upload),
deploy (upload + install check) and redeploy (no-op), a 50-run int8 benchmark, and a pipeline run with
deploy + benchmark + on-board accuracy check (train/quantize/validate cached). Two devices on the same
board: `rpi` (/opt/rpi-env: tflite-runtime 2.14.0, numpy 1.26) gets the per-tensor int8 variant
(per_channel: false; its arm64 kernels crash on some per-channel FULLY_CONNECTED), `rpi-litert`
(/opt/litert-env: ai-edge-litert) the default per-channel int8. Emulated: slow is expected, failing is not.
Appends a section to bench/RESULTS.md (command, date, machine, load average).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))
from _common import append_results  # noqa: E402

PIPELINE = REPO / "pipelines" / "fashion-mnist-mlp.yaml"
RUNS = 50
# device -> (python on the board, variant benchmarked there)
DEVICES = {"rpi": ("tflite-runtime", "int8pt"), "rpi-litert": ("litert", "int8")}


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Bench:
    def __init__(self, home: Path):
        self.home = home
        self.rows: list[tuple[str, str]] = []

    def edgeq(self, *args, expect: int = 0) -> tuple[float, dict]:
        env = {**os.environ, "EDGEQ_HOME": str(self.home)}
        env.pop("EDGEQ_DEVICES", None)
        t = time.perf_counter()
        p = subprocess.run(
            [sys.executable, "-m", "edgeq", *map(str, args), "--json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.home.parent,
        )
        wall = time.perf_counter() - t
        if p.returncode != expect:
            sys.exit(f"edgeq {' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return wall, json.loads(p.stdout)

    def row(self, what: str, value: str) -> None:
        self.rows.append((what, value))
        print(f"{what}: {value}", flush=True)


def pipeline_file(work: Path, devices: Path | None) -> Path:
    """The shipped pipeline plus a per-tensor int8 variant (and, with devices, deploy/benchmark stages)."""
    doc = yaml.safe_load(PIPELINE.read_text())
    doc["quantize"]["variants"] = [
        {"type": "fp32"},
        {"type": "int8", "calibration_samples": 500, "io": "int8"},
        {"type": "int8", "name": "int8pt", "calibration_samples": 500, "io": "int8", "per_channel": False},
    ]
    if devices is not None:
        doc["devices"] = str(devices)
        doc["deploy"] = {"targets": ["rpi", "rpi-litert"], "variants": ["int8", "int8pt"]}
        doc["benchmark"] = {
            "runs": RUNS,
            "warmup": 5,
            "min_seconds": 0.0,
            "threads": [1],
            "accuracy_check": True,
            "variants": ["int8pt", "int8"],
        }
    p = work / ("fashion-mnist-mlp-fleet.yaml" if devices else "fashion-mnist-mlp.yaml")
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def host_accuracy(model: str, inputs: Path, labels, default_delegates: bool) -> float:
    """Accuracy with ai-edge-litert on this machine, with (XNNPACK) or without its default delegate.

    Explains an on-board accuracy that differs from validate's: validate runs ai-edge-litert with
    XNNPACK, and tflite-runtime 2.14 computes some int8 layers with its builtin kernels instead.
    """
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kw = {} if default_delegates else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    it = Interpreter(model_path=model, **kw)
    it.allocate_tensors()
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    x = np.load(inputs)
    scale, zero = d["quantization"]
    if scale:  # as the agent does: round half away from zero, then clip
        v = x.astype(np.float64) / scale
        x = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + zero, -128, 127).astype(d["dtype"])
    preds = []
    for i in range(len(x)):
        it.set_tensor(d["index"], x[i : i + 1])
        it.invoke()
        preds.append(int(it.get_tensor(o["index"]).argmax()))
    return float(np.mean(np.array(preds) == labels))


def devices_yaml(work: Path, board) -> Path:
    known = work / "known_hosts"
    known.write_text(board.host_key_line + "\n")
    items = []
    for name, (runtime, _variant) in DEVICES.items():
        items.append(
            "  - "
            + json.dumps(
                {
                    "name": name,
                    "host": board.host,
                    "port": board.port,
                    "user": board.user,
                    "key_file": str(board.key_file),
                    "known_hosts": str(known),
                    "python": board.pythons[runtime],
                    "workdir": f"/root/bench-{runtime}",
                    "connect_timeout": 60,
                    "command_timeout": 1800,
                }
            )
            + "\n"
        )
    p = work / "devices.yaml"
    p.write_text("devices:\n" + "".join(items))
    return p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, help="EDGEQ_FARM_CACHE for this run (an empty dir measures a cold build)")
    args = ap.parse_args()
    if args.cache:
        os.environ["EDGEQ_FARM_CACHE"] = str(args.cache)
    from edgeq.testing import aarch64

    load_start = loadavg()
    work = Path(tempfile.mkdtemp(prefix="edgeq-aarch64-bench-"))
    b = Bench(work / "home")

    cached = (aarch64.cache_dir() / f"aarch64-{aarch64.recipe_hash()}" / "build.json").exists()
    t = time.perf_counter()
    rootfs = aarch64.ensure_rootfs(log=lambda m: print(m, file=sys.stderr, flush=True))
    ensure_s = time.perf_counter() - t
    info = aarch64.build_info(rootfs)
    b.row("rootfs ensure (this run)", f"{ensure_s:.1f} s ({'cache hit' if cached else 'built now'}; {aarch64.cache_dir()})")
    b.row(
        "rootfs build time recorded in build.json",
        f"{info['build_seconds']:.0f} s, {info['size_mb']} MB, phases {json.dumps(info['phases'])}",
    )

    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    # cold: the first start in this process (binfmt check, stale state sweep, first emulated sshd exec)
    t = time.perf_counter()
    board = aarch64.start_board(rootfs, authorized_pubkey=key.with_suffix(".pub"), key_file=key)
    cold = time.perf_counter() - t
    board.stop()
    t = time.perf_counter()
    board = aarch64.start_board(rootfs, authorized_pubkey=key.with_suffix(".pub"), key_file=key)
    warm = time.perf_counter() - t
    b.row("board start, cold / warm (start_board until sshd answers)", f"{cold:.1f} s / {warm:.1f} s")
    try:
        wall, run = b.edgeq("run", pipeline_file(work, None))
        b.row("host: edgeq run fashion-mnist-mlp (train + 3 variants, no fleet)", f"{wall:.1f} s")
        acc = {k: v["accuracy"] for k, v in run["variants"].items()}
        art = {k: v["artifact"] for k, v in run["variants"].items()}
        devices = devices_yaml(work, board)

        for attempt in ("first, uploads the agent", "again"):
            wall, doc = b.edgeq("devices", "check", "rpi", "rpi-litert", "--devices", devices)
            rt = ", ".join(f"{r['device']}: {r['arch']} {r['runtime']} {r['runtime_version']}" for r in doc["devices"])
            b.row(f"devices check, both envs ({attempt})", f"{wall:.1f} s ({rt})")
        for dev, (_rt, variant) in DEVICES.items():
            wall, doc = b.edgeq("deploy", art[variant], "-t", dev, "--devices", devices)
            wall2, doc2 = b.edgeq("deploy", art[variant], "-t", dev, "--devices", devices)
            b.row(
                f"deploy {variant} to {dev} (upload + install check) / redeploy (unchanged)",
                f"{wall:.1f} s ({doc['bytes_uploaded']:,} B) / {wall2:.1f} s ({doc2['bytes_uploaded']} B)",
            )
        for dev, (_rt, variant) in DEVICES.items():
            wall, doc = b.edgeq(
                "bench", art[variant], "-t", dev, "--runs", RUNS, "--warmup", 5, "--min-seconds", 0, "--devices", devices
            )
            (res,) = doc["devices"][0]["results"]
            lat = res["latency_ms"]
            b.row(
                f"bench {variant} on {dev}, {RUNS} runs, 1 thread ({res['runtime']['name']} {res['runtime']['version']})",
                f"{wall:.1f} s wall; p50 {lat['p50']:.3f} ms, p90 {lat['p90']:.3f} ms, p99 {lat['p99']:.3f} ms, "
                f"init {res['init_ms']:.1f} ms, first invoke {res['first_invoke_ms']:.2f} ms, {res['count']} runs",
            )

        wall, m = b.edgeq("run", pipeline_file(work, devices))
        b.row("edgeq run with deploy + benchmark + accuracy check on both envs (train/quantize cached)", f"{wall:.1f} s")
        for a in m["stages"]["benchmark_accuracy"]:
            same = "equal" if a["board_accuracy"] == a["validate_accuracy"] else "DIFFERENT"
            b.row(
                f"on-board accuracy, {a['variant']} on {a['device']} (10,000 test images)",
                f"{a['board_accuracy']:.4f} vs validate {a['validate_accuracy']:.4f} on the host: {same}",
            )
        b.row("host validate accuracy (ai-edge-litert)", ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
        from edgeq import config
        from edgeq.data import datasets as data

        spec, base = config.load_pipeline(pipeline_file(work, None))
        labels = data.load(spec.data, base, spec.seed).y_test
        inputs = work / "home" / "runs" / m["run_id"] / "test-inputs.npy"  # exactly what the boards got
        for v in ("int8", "int8pt"):
            xnn, ref = (host_accuracy(art[v], inputs, labels, dd) for dd in (True, False))
            b.row(f"host ai-edge-litert accuracy of {v}: XNNPACK (as validate) / builtin kernels only", f"{xnn:.4f} / {ref:.4f}")
    finally:
        board.stop()

    body = (
        "Emulated board: arm64 Debian bookworm under qemu-user (edgeq.testing.aarch64), real sshd on loopback; "
        "every step is the wall time of the `edgeq` CLI.\n\n"
    )
    body += f"- load average at start / end: {load_start} / {loadavg()} (the machine is shared)\n"
    body += f"- qemu: {info.get('qemu') or aarch64.qemu_version()}\n\n| step | measured |\n|---|---|\n"
    body += "".join(f"| {w} | {v} |\n" for w, v in b.rows)
    cmd = "python bench/aarch64_bench.py" + (f" --cache {args.cache}" if args.cache else "")
    append_results("Emulated aarch64 board (issue 3 of 5)", cmd, body)
    shutil.rmtree(work, ignore_errors=True)  # runs, test inputs (31 MB) and keys of this bench only
    return 0


if __name__ == "__main__":
    sys.exit(main())
