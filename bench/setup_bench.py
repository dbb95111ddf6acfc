"""Set-up time of `edgeq devices setup` per board kind, cold and rerun; appended to bench/RESULTS.md.

Board kinds: a real sshd board whose python is pyenv's 3.7 (a Coral's Mendel has 3.7), every session
offline (proxies and pip index dead), the emulated aarch64 Raspberry Pi (system python 3.11), and the
emulated bare Debian bullseye arm64 board (system python 3.9; flavour bullseye-bare, every session
offline as well). Per kind: cold (empty host wheel cache, bare board), bare board with the host cache
warm, rerun, then `devices check` and a `bench` of the tiny model. Every figure is the wall time of the
`edgeq` CLI in a subprocess. Run as root (sshd, the emulated boards).

    python bench/setup_bench.py [--kind py37|aarch64|bullseye ...] [--skip-aarch64]
"""

from __future__ import annotations

import argparse
import base64
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

from edgeq.fleet.setup.scripts import TINY_MODEL_B64  # noqa: E402
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
    tiny = root / "tiny.tflite"
    tiny.write_bytes(base64.b64decode(TINY_MODEL_B64))
    wall, doc = _cli(root, home, "bench", str(tiny), "-t", entries[1]["name"], "--runs", "20", "--min-seconds", "0.1")
    r = doc["devices"][0]["results"][0]
    lat = r.get("latency_ms") or {}
    rt = r.get("runtime") or {}
    rows.append(
        f"| {kind} | then `bench` tiny model (--runs 20 --min-seconds 0.1) | {wall:.1f} s | "
        f"ok: {r.get('ok')}, {r.get('count')} runs, "
        f"p50 {lat.get('p50')} ms | {rt.get('name')} {rt.get('version')} | |"
    )
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


def bench_bullseye(tmp: Path, notes: list[str]) -> list[str]:
    """The bare Debian bullseye arm64 board (python3 3.9, glibc 2.31), every session offline."""
    t0 = time.monotonic()
    cached = (aarch64.entry_dir("bullseye-bare") / "build.json").exists()
    rootfs = aarch64.ensure_rootfs(flavour="bullseye-bare", log=lambda m: print(m, file=sys.stderr, flush=True))
    ensure_s = time.monotonic() - t0
    info = aarch64.build_info(rootfs)
    versions = [ln for ln in info["manifest"].splitlines() if ln and not ln.startswith("#")]
    notes.append(
        f"bullseye-bare rootfs: {'cache hit' if cached else 'built now'} in {ensure_s:.0f} s; recorded build "
        f"{info['build_seconds']:.0f} s, {info['size_mb']} MB, phases {json.dumps(info['phases'])}; "
        f"{info.get('qemu')}; {'; '.join(versions)}"
    )
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)  # noqa: S603,S607
    board = aarch64.start_board(
        rootfs,
        authorized_pubkey=key.with_suffix(".pub"),
        key_file=key,
        flavour="bullseye-bare",
        session_env=offline.OFFLINE_ENV,
    )
    try:
        base = {
            "host": board.host,
            "port": board.port,
            "user": board.user,
            "key_file": str(key),
            "known_hosts": str(board.known_hosts),
            "python": board.python,  # /usr/bin/python3: no venv, no runtime
            "connect_timeout": 60,
            "command_timeout": 1800,
        }
        entries = [{**base, "name": f"bullseye-{i}", "workdir": f"/root/setup-bench-{i}"} for i in range(2)]
        return _rows_for("emulated aarch64 Debian bullseye (qemu-user), system Python 3.9, offline", tmp, entries)
    finally:
        board.stop()


KINDS = ("py37", "aarch64", "bullseye")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", action="append", choices=KINDS, help="board kinds to measure (default: all)")
    ap.add_argument("--skip-aarch64", action="store_true", help="leave out the emulated bookworm Pi")
    a = ap.parse_args()
    kinds = [k for k in KINDS if k in (a.kind or KINDS) and not (a.skip_aarch64 and k == "aarch64")]
    rows = ["| board | run | wall | action | runtime | uploaded |", "|---|---|---|---|---|---|"]
    notes: list[str] = []
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="setup-bench-") as t:
        tmp = Path(t)
        if "py37" in kinds:
            (tmp / "x86").mkdir()
            rows += bench_py37(tmp / "x86")
        if "aarch64" in kinds:
            (tmp / "arm").mkdir()
            rows += bench_aarch64(tmp / "arm")
        if "bullseye" in kinds:
            (tmp / "bullseye").mkdir()
            rows += bench_bullseye(tmp / "bullseye", notes)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    body = (
        "`edgeq devices setup` on bare boards (no venv, no runtime): wheels downloaded on this host "
        "(`pip download`, cached under EDGEQ_HOME/wheels), uploaded, venv + offline pip install, "
        "load-and-invoke check. Wall time of the CLI.\n\n"
        f"- load average at the start / end: {load_start} / {load} (the machine is shared)\n"
        + "".join(f"- {n}\n" for n in notes)
        + "\n"
        + "\n".join(rows)
    )
    cmd = "python bench/setup_bench.py" + "".join(f" {x}" for x in sys.argv[1:])
    append_results("devices setup: bare board to ready, per board kind", cmd, body)
    print(body)


if __name__ == "__main__":
    main()
