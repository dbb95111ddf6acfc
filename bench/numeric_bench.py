"""The numeric check on the emulated aarch64 board: unchanged model vs host, and one layer requantized wrong.

An int8 MLP (three FULLY_CONNECTED) runs on the emulated Raspberry Pi (Debian bookworm arm64 under qemu-user)
with tflite-runtime 2.14 and with ai-edge-litert, each against this x86_64 host's ai-edge-litert trace. Then,
for each layer, a copy with that layer's weight scale x1.5 runs on the board against the unchanged model on
the host: the check must name that layer. Appends to bench/RESULTS.md. Run as root.

    python bench/numeric_bench.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import append_results  # noqa: E402

from edgeq.testing import aarch64  # noqa: E402
from edgeq.testing.perturb import perturb_weight_scale, small_int8_mlp  # noqa: E402


def _cli(tmp: Path, *args: str) -> tuple[int, dict, float]:
    env = {**os.environ, "EDGEQ_HOME": str(tmp / "home"), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    t0 = time.monotonic()
    p = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "edgeq", *args, "--devices", str(tmp / "devices.yaml"), "--json"],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env=env,
    )
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        raise SystemExit(f"edgeq {' '.join(args)}: no JSON (exit {p.returncode}):\n{p.stdout}\n{p.stderr[-3000:]}") from None
    return p.returncode, doc, time.monotonic() - t0


def _row(label: str, code: int, doc: dict, wall: float) -> list[str]:
    out = []
    for c in doc.get("checks", []):
        f = c.get("first_divergent")
        first = f"#{f['op_index']} {f['op']} ({f['error']:g} steps)" if f and f.get("error") is not None else "none"
        errs = ", ".join(f"#{o['op_index']}: {o['error']:g}" for o in c.get("ops", []))
        out.append(
            f"| {label} | {c['device']} | {'ok' if c['ok'] else 'drifts'} (exit {code}) | {first} | {errs} | {wall:.1f} s |"
        )
    return out


def main() -> None:
    rootfs = aarch64.ensure_rootfs()
    with tempfile.TemporaryDirectory(prefix="numeric-bench-") as t:
        tmp = Path(t)
        good, golden = tmp / "good.tflite", tmp / "golden.npy"
        small_int8_mlp(good, golden)
        key = tmp / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)  # noqa: S603,S607
        board = aarch64.start_board(rootfs, authorized_pubkey=key.with_suffix(".pub"), key_file=key)
        try:
            base = {"host": board.host, "port": board.port, "user": board.user, "key_file": str(key)}
            base |= {"known_hosts": str(board.known_hosts), "connect_timeout": 60, "command_timeout": 1800}
            entries = [
                {**base, "name": "pi-tflite-runtime", "python": aarch64.PYTHONS["tflite-runtime"], "workdir": "/root/nb-trt"},
                {**base, "name": "pi-litert", "python": aarch64.PYTHONS["litert"], "workdir": "/root/nb-litert"},
            ]
            (tmp / "devices.yaml").write_text("devices:\n" + "".join("  - " + json.dumps(e) + "\n" for e in entries))
            rows = ["| model on the board | device | result | first op over 1 step | max error per op (steps) | wall |"]
            rows.append("|---|---|---|---|---|---|")
            code, doc, wall = _cli(tmp, "numerics", str(good), "-t", "all", "--inputs", str(golden))
            rows += _row("unchanged", code, doc, wall)
            for op in (0, 1, 2):
                bad = tmp / f"bad{op}.tflite"
                perturb_weight_scale(good, bad, op, 1.5)
                code, doc, wall = _cli(tmp, "numerics", str(bad), "-t", "all", "--inputs", str(golden), "--reference", str(good))
                rows += _row(f"layer #{op} weight scale x1.5", code, doc, wall)
        finally:
            board.stop()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    body = (
        "`edgeq numerics` on the emulated aarch64 Pi (tflite-runtime 2.14.0 and ai-edge-litert venvs), reference: this "
        "host's ai-edge-litert trace of the unchanged int8 MLP (Input(16) -> FC 12 -> FC 10 -> FC 4), 4 golden rows, "
        "tolerance 1 step.\n\n"
        f"- load average at the end: {load} (the machine is shared)\n\n" + "\n".join(rows)
    )
    append_results(
        "numeric check: perturbed layer localised on the emulated aarch64 board", "python bench/numeric_bench.py", body
    )
    print(body)


if __name__ == "__main__":
    main()
