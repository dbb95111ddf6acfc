"""Issue [2 of 7] (unattended, under faults): 20 boards, 5 of them wedged (SSH login accepted, then no reply).

Run:  python bench/wedged_bench.py [--healthy 15] [--wedged 5] [--connect-timeout 5] [--parallel 20]

Boards: `--healthy` real sshd boards (edgeq.testing.sshfarm) and `--wedged` paramiko servers that complete the
handshake and key auth and then never answer a session request (edgeq.testing.stallserver, "request").
Measured with the real CLI (`python -m edgeq ... --json`), each command once on the healthy boards alone
(baseline) and once on all boards, every run on fresh work dirs (the agent is uploaded each time):
  devices check, deploy of a small .tflite.
Documented bound: a wedged board is given up after its own connect plus one unanswered request
(connect_timeout), and the watchdog adds at most WATCHDOG_GRACE when an inner bound fails; with every board
in flight at once (--parallel >= boards) the command's wall time is within
  baseline + connect_timeout + WATCHDOG_GRACE
Target: measured wall <= that bound + 10%. Writes a dated section to bench/RESULTS.md and prints it.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from edgeq.fleet.fanout import WATCHDOG_GRACE  # noqa: E402
from edgeq.testing import fleet as tf  # noqa: E402
from edgeq.testing import sshfarm, stallserver  # noqa: E402


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def tiny_tflite(d: Path) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf_

    inp = tf_.keras.Input((8,))
    blob = tf_.lite.TFLiteConverter.from_keras_model(tf_.keras.Model(inp, tf_.keras.layers.Dense(3)(inp))).convert()
    p = d / "dense.tflite"
    p.write_bytes(blob)
    return p


def devices_file(root: Path, tag: str, farm, wedged, kh: Path, ct: float, with_wedged: bool) -> Path:
    run = root / tag
    run.mkdir()
    over = {"connect_timeout": ct, "known_hosts": str(kh)}
    ents = [tf.board_entry(farm, b, run, f"h{i + 1}", **over) for i, b in enumerate(farm.boards)]
    if with_wedged:
        for i, w in enumerate(wedged):
            fake = sshfarm.FarmBoard(f"w{i + 1}", w.port, run, run / "boards" / f"w{i + 1}", Path("/dev/null"))
            ents.append(tf.board_entry(farm, fake, run, f"w{i + 1}", **over))
    return tf.write_devices(run, *ents)


def timed(args: list[str], home: Path) -> tuple[float, dict, int]:
    env = {**os.environ, "EDGEQ_HOME": str(home), "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "edgeq", *args, "--json"], capture_output=True, text=True, env=env, timeout=900)
    wall = time.monotonic() - t0
    return wall, json.loads(p.stdout), p.returncode


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--healthy", type=int, default=15)
    ap.add_argument("--wedged", type=int, default=5)
    ap.add_argument("--connect-timeout", type=float, default=5.0)
    ap.add_argument("--parallel", type=int, default=20)
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="edgeq-wedged-"))
    load0 = load()
    farm = sshfarm.SSHFarm.start(root / "farm", n=a.healthy)
    pub = Path(str(farm.user_key) + ".pub").read_text()
    wedged = [stallserver.wedged_board(root / "stall", pub, "request") for _ in range(a.wedged)]
    kh = root / "known_hosts"
    kh.write_text(Path(str(farm.known_hosts)).read_text() + "".join(w.known_hosts_line + "\n" for w in wedged))
    art = tiny_tflite(root)
    home = root / "home"
    rows = []
    try:
        for cmd in ("check", "deploy"):
            walls = {}
            for tag, with_w in (("baseline", False), ("wedged", True)):
                dev = devices_file(root, f"{cmd}-{tag}", farm, wedged, kh, a.connect_timeout, with_w)
                args = ["devices", "check", "--devices", str(dev), "--parallel", str(a.parallel)]
                if cmd == "deploy":
                    args = ["deploy", str(art), "-t", "all", "--devices", str(dev), "--parallel", str(a.parallel)]
                wall, doc, rc = timed(args, home)
                devs = doc["devices"]
                ok = sum(1 for d in devs if d["status"] in ("ok", "changed"))
                bad = sorted({d.get("kind") or "" for d in devs if d["status"] not in ("ok", "changed")})
                walls[tag] = wall
                rows.append((cmd, tag, len(devs), ok, ",".join(bad) or "-", rc, wall))
            bound = walls["baseline"] + a.connect_timeout + WATCHDOG_GRACE
            rows.append((cmd, "bound", "", "", "", "", bound))
            rows.append((cmd, "wedged / bound", "", "", "", "", walls["wedged"] / bound))
    finally:
        for w in wedged:
            w.stop()
        farm.stop()
    lines = [
        f"- boards: {a.healthy} healthy sshd (edgeq.testing.sshfarm) + {a.wedged} wedged (stallserver, login accepted "
        f"then no reply to the sftp/exec request); connect_timeout {a.connect_timeout:g}s, --parallel {a.parallel}, "
        f"WATCHDOG_GRACE {WATCHDOG_GRACE:g}s",
        "- bound = baseline (healthy boards alone) + connect_timeout + WATCHDOG_GRACE; target wedged wall <= bound x 1.1",
        f"- load average at start / end: {load0} / {load()} (the machine is shared)",
        "",
        "| command | run | boards | ok | failure kinds | exit | wall s (ratio) |",
        "|---|---|---|---|---|---|---|",
    ]
    for cmd, tag, n, ok, kinds, rc, v in rows:
        val = f"{v:.2f}" if tag != "wedged / bound" else f"{v:.2f} ({'PASS' if v <= 1.1 else 'FAIL'})"
        lines.append(f"| {cmd} | {tag} | {n} | {ok} | {kinds} | {rc} | {val} |")
    body = "\n".join(lines)
    append_results("Wedged boards (issue 2 of 7)", "python bench/wedged_bench.py", body)
    print(body)


if __name__ == "__main__":
    main()
