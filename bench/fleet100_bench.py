"""Issue [7 of 7] numbers: one orchestrator, 100 real sshd boards on this 2-core machine.

Run:  python bench/fleet100_bench.py [--boards 100] [--parallel 5 20] [--board-python lean|host]

Boards: edgeq.testing.sshfarm (one sshd each, own port and work dir). The artifact: a ~2 MB fp32 TFLite
(Dense 16->1024->512->3), and copies with another sha256 (the converter's description rewritten in place,
see fleet_bench.variant_of). Every step is the real CLI (`python -m edgeq ... --json`) in a subprocess:
  deploy of a new artifact to all boards (first: the agent is uploaded too; then a new artifact with the
  agent in place), the same artifact again (unchanged), `devices check`, and `bench` (--runs 50
  --min-seconds 0.2) on all boards; per --parallel value.
Reported: wall, the orchestrator's CPU seconds (user+sys of the edgeq process) and peak RSS, the boards'
CPU (their sshd trees), load average. Targets: deploy <= 60 s, unchanged <= 20 s, check <= 20 s.
--board-python lean (default): the boards run a venv of this Python without this host's .pth hooks
(sshfarm.lean_python, as a board's own venv); host: this interpreter itself (the runs before 2026-11-28 03:00).
The model is built in a child process, so TensorFlow's memory is not in the edgeq subprocesses' peak RSS.
The 10-of-100-stalling part is bench/fleet100_stall_bench.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results
from _fleetkit import boards_cpu

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from edgeq.testing import sshfarm  # noqa: E402


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def model_2mb(out: Path) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(3)
    inp = tf.keras.Input((16,))
    x = tf.keras.layers.Dense(1024, activation="relu")(inp)
    x = tf.keras.layers.Dense(512, activation="relu")(x)
    m = tf.keras.Model(inp, tf.keras.layers.Dense(3)(x))
    out.write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    return out


def variant_of(artifact: Path, out: Path, tag: int) -> Path:
    blob = artifact.read_bytes()
    old = b"MLIR Converted."
    assert blob.count(old) == 1, f"{artifact}: no unique converter description to rewrite"
    out.write_bytes(blob.replace(old, f"fleet100b{tag:06d}".encode()))
    return out


def build_model(out: Path) -> Path:
    """model_2mb in a child process: this process stays small, and so do the edgeq processes it forks."""
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); from fleet100_bench import model_2mb; "
    code += f"from pathlib import Path; model_2mb(Path({str(out)!r}))"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # noqa: S603
    return out


def cli(args: list[str], env: dict, timeout: float = 1800) -> dict:
    """One edgeq command: wall, and its own CPU (user+sys) and peak RSS (os.wait4: this child's rusage only)."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "edgeq", *args, "--json"], stdout=out, stderr=err, env=env)  # noqa: S603
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    p = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    doc = json.loads(p.stdout) if p.stdout.strip().startswith("{") else {}
    devs = doc.get("devices") or []
    bad = [d for d in devs if d.get("status") not in ("ok", "changed")]
    return {
        "exit": p.returncode,
        "wall_s": round(wall, 1),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 1),
        "max_rss_mb": round(ru.ru_maxrss / 1024),
        "boards": len(devs),
        "not_ok": len(bad),
        "kinds": dict(Counter(f"{d.get('status')}/{d.get('kind')}" for d in bad)),
        "first_error": (bad[0].get("error") if bad else None)
        or ((p.stderr.strip().splitlines() or [""])[-1][:200] if p.returncode else None),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--boards", type=int, default=100)
    ap.add_argument("--parallel", type=int, nargs="+", default=[5, 20])
    ap.add_argument("--board-python", choices=["lean", "host"], default="lean")
    a = ap.parse_args()
    rows = []
    art_mb = 0.0
    with tempfile.TemporaryDirectory(prefix="fleet100-") as t:
        root = Path(t)
        t0 = time.monotonic()
        farm = sshfarm.SSHFarm.start(root / "farm", n=a.boards)
        start_s = time.monotonic() - t0
        try:
            art = build_model(root / "m.tflite")
            py = sshfarm.lean_python(root) if a.board_python == "lean" else sys.executable
            art_mb = art.stat().st_size / 1e6
            env = {**os.environ, "EDGEQ_HOME": str(root / "home"), "PYTHONPATH": str(REPO)}
            tag = 0
            for par in a.parallel:
                devices = root / f"devices-{par}.yaml"
                entries = [
                    farm.device_yaml(b, workdir=str(root / f"w{par}" / b.name), connect_timeout=10, python=py)
                    for b in farm.boards
                ]
                devices.write_text("devices:\n" + "".join(entries))
                common = ["--devices", str(devices), "--parallel", str(par)]
                steps = []
                tag += 1
                first = variant_of(art, root / f"a{tag}.tflite", tag)
                steps.append(
                    ("deploy, fresh boards (agent + 2 MB model)", ["deploy", str(first), "-t", "all", "--name", "m", *common])
                )
                tag += 1
                new = variant_of(art, root / f"a{tag}.tflite", tag)
                steps.append(
                    ("deploy of a new 2 MB artifact (agent in place)", ["deploy", str(new), "-t", "all", "--name", "m", *common])
                )
                steps.append(("deploy again, unchanged", ["deploy", str(new), "-t", "all", "--name", "m", *common]))
                steps.append(("devices check", ["devices", "check", "all", *common]))
                bench = ["bench", str(new), "-t", "all", "--name", "m", "--runs", "50", "--min-seconds", "0.2", *common]
                steps.append(("bench (--runs 50 --min-seconds 0.2)", bench))
                for label, args in steps:
                    c0 = boards_cpu(farm)
                    r = cli(args, env)
                    r.update(step=label, parallel=par, boards_cpu_s=round(boards_cpu(farm) - c0, 1), load=load())
                    rows.append(r)
                    print(json.dumps(r), file=sys.stderr)
        finally:
            farm.stop()
    lines = [
        f"- farm: {a.boards} sshd boards started in {start_s:.1f} s; artifact {art_mb:.2f} MB "
        f"(fp32 Dense 16-1024-512-3); every step is the CLI in a subprocess; board python: {a.board_python}\n",
        "| --parallel | step | wall | exit | boards not ok | edgeq CPU (user+sys) | edgeq peak RSS | boards' CPU | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['parallel']} | {r['step']} | {r['wall_s']} s | {r['exit']} | {r['not_ok']} of {r['boards']} | "
            f"{r['cpu_s']} s | {r['max_rss_mb']} MB | {r['boards_cpu_s']} s | {r['load']} |"
        )
    errs = sorted({r["first_error"] for r in rows if r["not_ok"] and r["first_error"]})
    if errs:
        lines += ["", "First errors seen: " + "; ".join(errs)]
    body = "\n".join(lines)
    pars = " ".join(map(str, a.parallel))
    cmd = f"python bench/fleet100_bench.py --boards {a.boards} --parallel {pars} --board-python {a.board_python}"
    append_results(f"{a.boards} boards, one orchestrator", cmd, body)
    print(body)


if __name__ == "__main__":
    main()
