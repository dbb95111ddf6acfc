"""Set-up time of `edgeq devices setup` per board kind, cold and rerun; appended to bench/RESULTS.md.

Board kinds: a real sshd board whose python is pyenv's 3.7 (a Coral's Mendel has 3.7), every session
offline (proxies and pip index dead), and the emulated aarch64 Raspberry Pi (system python 3.11).
Per kind: cold (empty host wheel cache, bare board), bare board with the host cache warm, rerun.
Every figure is the wall time of the `edgeq` CLI in a subprocess. Run as root (sshd, the emulated board).

    python bench/setup_bench.py [--skip-aarch64]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import append_results  # noqa: E402

from edgeq.testing import aarch64, offline, sshfarm  # noqa: E402

PY37 = "/root/.pyenv/versions/3.7.16/bin/python3.7"


def _cli(root: Path, home: Path, *args: str) -> tuple[float, dict]:
    env = {**os.environ, "EDGEQ_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("EDGEQ_DEVICES", None)
    t0 = time.monotonic()
    p = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "edgeq", *args, "--devices", str(root / "devices.yaml"), "--json"],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
        env=env,
    )
    wall = time.monotonic() - t0
    if p.returncode:
        raise SystemExit(f"edgeq {' '.join(args)} failed (exit {p.returncode}):\n{p.stdout}\n{p.stderr[-3000:]}")
    return wall, json.loads(p.stdout)


def _rows_for(kind: str, root: Path, entries: list[dict]) -> list[str]:
    """entries: two devices on the same board, different workdirs (cold, warm-cache)."""
    (root / "devices.yaml").write_text("devices:\n" + "".join("  - " + json.dumps(e) + "\n" for e in entries))
    home = root / "home"
    rows = []
    for label, name in (
        ("cold: empty host wheel cache, bare board", entries[0]["name"]),
        ("bare board, host cache warm", entries[1]["name"]),
        ("rerun (unchanged)", entries[1]["name"]),
    ):
        wall, doc = _cli(root, home, "devices", "setup", name, "--write")
        d = doc["devices"][0]
        rows.append(
            f"| {kind} | {label} | {wall:.1f} s | {d['action']} | {d.get('runtime')} {d.get('runtime_version')}, "
            f"numpy {d.get('numpy')}, Python {d.get('base_python_version')} | {d['bytes_uploaded']:,} B |"
        )
    wall, doc = _cli(root, home, "devices", "check", entries[1]["name"])
    rows.append(f"| {kind} | then `devices check` | {wall:.1f} s | healthy: {doc['devices'][0]['healthy']} | | |")
    return rows


def bench_py37(tmp: Path) -> list[str]:
    farm = sshfarm.SSHFarm.start(tmp / "farm", n=1)
    try:
        b = farm.boards[0]
        offline.make_offline(b)
        base = json.loads(farm.device_yaml(b)[4:])
        entries = [{**base, "name": f"py37-{i}", "python": PY37, "workdir": str(tmp / f"w{i}")} for i in range(2)]
        return _rows_for("sshd board, pyenv Python 3.7, x86_64, offline", tmp, entries)
    finally:
        farm.stop()


def bench_aarch64(tmp: Path) -> list[str]:
    rootfs = aarch64.ensure_rootfs()
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)  # noqa: S603,S607
    board = aarch64.start_board(rootfs, authorized_pubkey=key.with_suffix(".pub"), key_file=key)
    try:
        base = {
            "host": board.host,
            "port": board.port,
            "user": board.user,
            "key_file": str(key),
            "known_hosts": str(board.known_hosts),
            "python": "/usr/bin/python3",
            "connect_timeout": 60,
            "command_timeout": 1800,
        }
        entries = [{**base, "name": f"pi-{i}", "workdir": f"/root/setup-bench-{i}"} for i in range(2)]
        return _rows_for("emulated aarch64 Pi (qemu-user), system Python 3.11", tmp, entries)
    finally:
        board.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-aarch64", action="store_true")
    a = ap.parse_args()
    rows = ["| board | run | wall | action | runtime | uploaded |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="setup-bench-") as t:
        tmp = Path(t)
        (tmp / "x86").mkdir()
        rows += bench_py37(tmp / "x86")
        if not a.skip_aarch64:
            (tmp / "arm").mkdir()
            rows += bench_aarch64(tmp / "arm")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    body = (
        "`edgeq devices setup` on bare boards (no venv, no runtime): wheels downloaded on this host "
        "(`pip download`, cached under EDGEQ_HOME/wheels), uploaded, venv + offline pip install, "
        "load-and-invoke check. Wall time of the CLI.\n\n"
        f"- load average at the end: {load} (the machine is shared)\n\n" + "\n".join(rows)
    )
    cmd = "python bench/setup_bench.py" + (" --skip-aarch64" if a.skip_aarch64 else "")
    append_results("devices setup: bare board to ready, per board kind", cmd, body)
    print(body)


if __name__ == "__main__":
    main()
