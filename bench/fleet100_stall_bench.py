"""Issue [7 of 7] numbers with faults: 100 boards of which 10 stall after authentication.

Run:  python bench/fleet100_stall_bench.py [--boards 100] [--stalled 10] [--parallel 20] [--connect-timeout 10]
                                           [--board-python lean|host]

Boards: boards - stalled real sshd boards (edgeq.testing.sshfarm) and `--stalled` paramiko servers that complete
the handshake and key authentication and then never answer the exec or sftp request (edgeq.testing.stallserver,
"request"), spread through devices.yaml (every k-th entry). Each step is the real CLI (`python -m edgeq ... --json`)
twice: on the healthy boards alone (baseline) and on all boards (stalled), in this order:
  deploy of a new 2 MB artifact (agent in place), the same artifact again (unchanged), devices check, bench.
Documented bound (docs/fleet.md#timeouts-and-wedged-boards): the stalled run's wall <= baseline + connect_timeout +
WATCHDOG_GRACE, checked with 10 % slack for the shared machine; the healthy boards all ok, the stalled ones
`unreachable`, kind `timeout`. The absolute targets of the issue (deploy <= 60 s, unchanged and check <= 20 s)
are shown beside them. Writes a dated section to bench/RESULTS.md and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results
from fleet100_bench import build_model, cli, load, variant_of

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from edgeq.fleet.fanout import WATCHDOG_GRACE  # noqa: E402
from edgeq.testing import sshfarm, stallserver  # noqa: E402

TARGETS = {"deploy": 60.0, "unchanged": 20.0, "check": 20.0}


def devices_file(path: Path, farm, stalled, py: str, ct: float, with_stalled: bool) -> Path:
    """Healthy boards h1.., stalled s1.. spread evenly among them (so they start while others run)."""
    ents = [
        farm.device_yaml(b, f"h{i + 1}", workdir=str(b.workdir), connect_timeout=ct, python=py) for i, b in enumerate(farm.boards)
    ]
    if with_stalled:
        step = max(1, len(ents) // max(1, len(stalled)))
        for j, w in enumerate(stalled):
            fake = sshfarm.FarmBoard(f"s{j + 1}", w.port, path.parent, path.parent / f"s{j + 1}", Path("/dev/null"))
            ents.insert(min(len(ents), j * (step + 1)), farm.device_yaml(fake, f"s{j + 1}", connect_timeout=ct, python=py))
    path.write_text("devices:\n" + "".join(ents))
    return path


def run_step(label: str, args: list[str], env: dict, dev_base: Path, dev_all: Path) -> list[dict]:
    rows = []
    for tag, dev in (("baseline", dev_base), ("stalled", dev_all)):
        r = cli([*args, "--devices", str(dev)], env)
        r.update(step=label, run=tag, load=load())
        rows.append(r)
        print(json.dumps(r), file=sys.stderr)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--boards", type=int, default=100)
    ap.add_argument("--stalled", type=int, default=10)
    ap.add_argument("--parallel", type=int, default=20)
    ap.add_argument("--connect-timeout", type=float, default=10.0)
    ap.add_argument("--board-python", choices=["lean", "host"], default="lean")
    a = ap.parse_args()
    load0 = load()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="fleet100-stall-") as t:
        root = Path(t)
        farm = sshfarm.SSHFarm.start(root / "farm", n=a.boards - a.stalled)
        pub = Path(str(farm.user_key) + ".pub").read_text()
        stalled = [stallserver.wedged_board(root / "stall", pub, "request") for _ in range(a.stalled)]
        try:
            assert farm.known_hosts is not None  # noqa: S101 - start() wrote it
            with open(farm.known_hosts, "a") as f:
                f.write("".join(w.known_hosts_line + "\n" for w in stalled))
            py = sshfarm.lean_python(root) if a.board_python == "lean" else sys.executable
            art = build_model(root / "m.tflite")
            dev_base = devices_file(root / "healthy.yaml", farm, stalled, py, a.connect_timeout, False)
            dev_all = devices_file(root / "all.yaml", farm, stalled, py, a.connect_timeout, True)
            env = {**os.environ, "EDGEQ_HOME": str(root / "home"), "PYTHONPATH": str(REPO)}
            par = ["--parallel", str(a.parallel)]
            first = variant_of(art, root / "a1.tflite", 1)  # agent and a first model in place: not measured
            cli(["deploy", str(first), "-t", "all", "--name", "m", "--devices", str(dev_base), *par], env)
            a2, a3 = variant_of(art, root / "a2.tflite", 2), variant_of(art, root / "a3.tflite", 3)
            # each run of the deploy step gets a model new to the healthy boards
            for tag, dev, model in (("baseline", dev_base, a2), ("stalled", dev_all, a3)):
                r = cli(["deploy", str(model), "-t", "all", "--name", "m", "--devices", str(dev), *par], env)
                r.update(step="deploy", run=tag, load=load())
                rows.append(r)
                print(json.dumps(r), file=sys.stderr)
            rows += run_step("unchanged", ["deploy", str(a3), "-t", "all", "--name", "m", *par], env, dev_base, dev_all)
            rows += run_step("check", ["devices", "check", "all", *par], env, dev_base, dev_all)
            bench = ["bench", str(a3), "-t", "all", "--name", "m", "--runs", "50", "--min-seconds", "0.2", *par]
            rows += run_step("bench", bench, env, dev_base, dev_all)
        finally:
            for w in stalled:
                w.stop()
            farm.stop()
    body = report(a, rows, load0)
    cmd = (
        f"python bench/fleet100_stall_bench.py --boards {a.boards} --stalled {a.stalled} --parallel {a.parallel} "
        f"--connect-timeout {a.connect_timeout:g} --board-python {a.board_python}"
    )
    append_results(f"{a.boards} boards, {a.stalled} stalling after authentication", cmd, body)
    print(body)


def report(a, rows: list[dict], load0: str) -> str:
    lines = [
        f"- boards: {a.boards - a.stalled} healthy sshd (edgeq.testing.sshfarm, board python: {a.board_python}) + "
        f'{a.stalled} stalling (stallserver "request": login accepted, then no reply to the exec/sftp request), '
        f"spread through devices.yaml; connect_timeout {a.connect_timeout:g} s, --parallel {a.parallel}, "
        f"WATCHDOG_GRACE {WATCHDOG_GRACE:g} s; artifact ~2 MB; every step is the CLI in a subprocess",
        "- bound = baseline (the healthy boards alone) + connect_timeout + WATCHDOG_GRACE; PASS if stalled wall <= "
        "bound x 1.1, the healthy boards all ok/changed and every stalled board unreachable/timeout",
        f"- load average at the start: {load0}; per row: after the run (the machine is shared with other sessions)",
        "",
        "| step | run | wall | exit | boards | not ok | failure kinds | edgeq CPU | edgeq peak RSS | target | bound (ratio) "
        "| load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base: dict[str, float] = {}
    for r in rows:
        target = TARGETS.get(r["step"])
        tcell = f"<= {target:g} s ({'met' if r['wall_s'] <= target else 'NOT met'})" if target else ""
        bcell = ""
        if r["run"] == "baseline":
            base[r["step"]] = r["wall_s"]
        else:
            bound = base[r["step"]] + a.connect_timeout + WATCHDOG_GRACE
            healthy_ok = r["not_ok"] == a.stalled and r["kinds"] == {"unreachable/timeout": a.stalled}
            ok = r["wall_s"] <= bound * 1.1 and healthy_ok
            bcell = f"{bound:.1f} s ({r['wall_s'] / bound:.2f}, {'PASS' if ok else 'FAIL'})"
        kinds_txt = ", ".join(f"{k} x{n}" for k, n in sorted(r["kinds"].items())) or "-"
        lines.append(
            f"| {r['step']} | {r['run']} | {r['wall_s']} s | {r['exit']} | {r['boards']} | {r['not_ok']} | {kinds_txt} | "
            f"{r['cpu_s']} s | {r['max_rss_mb']} MB | {tcell} | {bcell} | {r['load']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
