"""`edgeq metrics serve` under load: /metrics latency (p50, max) while reports render and while slow clients hold sockets.

Run:  python bench/metrics_serve_bench.py [--baseline REV] [--no-record]
History: 9 runs of one pipeline, each 8 boards x 4 variants x 2 thread counts x 2000 samples, so the report of one
run costs seconds of CPU (measured in-process and printed). Each scenario starts a fresh `edgeq metrics serve`
(the CLI as a user runs it, default bounds, empty report cache) and scrapes /metrics one request after another,
0.1 s apart:
  idle       20 scrapes, nothing else;
  reports    8 concurrent /report requests for 8 different runs (every one a render), scraped from the moment they
             are sent until the last report has arrived (at most 180 s);
  one-byte   40 sockets that each sent one byte and then nothing, scraped for 12 s (past the 10 s request deadline).
A scrape without an answer within 10 s counts as 10 s and is marked timed out. --baseline REV runs the same first
against `git archive REV edgeq` (put first on PYTHONPATH), e.g. the commit before the lanes. Target: max <= 1 s
in both loaded scenarios. Prints the table; appends it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEVICES = ("pi5", "pi4", "rk3588", "coral", "jetson", "imx8", "pi3", "rock5")
SHAPE: dict[str, Any] = {"devices": DEVICES, "variants": ("fp32", "int8", "dynamic", "float16"), "threads": (1, 4), "n": 2000}
RUNS = 9
SCRAPE_TIMEOUT_S = 10.0
TARGET_MAX_S = 1.0


def _rid(i: int) -> str:
    return f"202601{i + 1:02d}T023000Z-bench{i:02d}"


def _noon_ms(i: int) -> int:
    return int(datetime.fromisoformat(f"2026-01-{i + 1:02d}T12:00:00+00:00").timestamp() * 1000)


def build_history(db: Path) -> float:
    """Record the runs; returns the CPU seconds of one report render (the newest run, matplotlib already loaded)."""
    from edgeq.metrics.reportlink import render_at
    from edgeq.results import load_manifest, record_run
    from edgeq.testing.promfarm import synthetic_manifest

    for i in range(RUNS):
        started = f"2026-01-{i + 1:02d}T02:30:00+00:00"
        record_run(load_manifest(synthetic_manifest(_rid(i), started=started, seed=i, **SHAPE)), db)
    render_at(db, "synth", 2e9)
    t = time.process_time()
    render_at(db, "synth", 2e9)
    return time.process_time() - t


def _get(url: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class Server:
    """`edgeq metrics serve` in a child process, started fresh for one scenario."""

    def __init__(self, db: Path, env: dict[str, str], log: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._log = log.open("a")
        argv = [sys.executable, "-m", "edgeq", "metrics", "serve", "--port", str(self.port), "--db", str(db)]
        # cwd: not the repo, whose ./edgeq `python -m` would import ahead of a baseline's PYTHONPATH
        self.proc = subprocess.Popen(argv, env=env, cwd=log.parent, stderr=subprocess.PIPE, text=True)  # noqa: S603
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        if "serving http://" not in line:
            sys.exit(f"edgeq metrics serve did not start: {line}")
        self._drain = threading.Thread(target=lambda: self._log.writelines(self.proc.stderr or ()), daemon=True)
        self._drain.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drain.join(timeout=5)
        self._log.close()


def scrape_while(server: Server, busy: Callable[[], bool], min_scrapes: int = 0) -> list[tuple[float, bool]]:
    """(seconds, timed out) of sequential scrapes, 0.1 s apart, while busy() (and at least min_scrapes)."""
    out: list[tuple[float, bool]] = []
    while busy() or len(out) < min_scrapes:
        t = time.monotonic()
        try:
            ok = _get(server.url("/metrics"), SCRAPE_TIMEOUT_S) == 200
        except OSError:
            ok = False
        took = time.monotonic() - t
        out.append((min(took, SCRAPE_TIMEOUT_S), not ok))
        time.sleep(0.1)
    return out


def scenario_idle(server: Server) -> tuple[list[tuple[float, bool]], str]:
    return scrape_while(server, lambda: False, min_scrapes=20), ""


def scenario_reports(server: Server) -> tuple[list[tuple[float, bool]], str]:
    codes: dict[int, tuple[int, float]] = {}
    t0 = time.monotonic()

    def fetch(i: int) -> None:
        try:
            code = _get(server.url(f"/report?pipeline=synth&time={_noon_ms(i)}"), 180)
        except OSError:
            code = 0
        codes[i] = (code, time.monotonic() - t0)

    threads = [threading.Thread(target=fetch, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    scrapes = scrape_while(server, lambda: len(codes) < 8 and time.monotonic() - t0 < 180)
    ok = sum(1 for c, _ in codes.values() if c == 200)
    last = max((s for _, s in codes.values()), default=float("nan"))
    other = sorted({c for c, _ in codes.values() if c != 200})
    return scrapes, f"{ok}/8 reports 200{f' (others: {other})' if other else ''}, last after {last:.1f} s"


def scenario_one_byte(server: Server) -> tuple[list[tuple[float, bool]], str]:
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(40)]
    for s in socks:
        s.sendall(b"G")
    t0 = time.monotonic()
    try:
        scrapes = scrape_while(server, lambda: time.monotonic() - t0 < 12)
    finally:
        for s in socks:
            s.close()
    return scrapes, "40 sockets, 1 byte each, held 12 s"


SCENARIOS = {"idle": scenario_idle, "8 reports": scenario_reports, "40 one-byte sockets": scenario_one_byte}


def run_all(label: str, db: Path, env: dict[str, str], log: Path) -> list[str]:
    rows = []
    for name, fn in SCENARIOS.items():
        server = Server(db, env, log)
        try:
            scrapes, note = fn(server)
        finally:
            server.stop()
        lat = [s for s, _ in scrapes]
        timeouts = sum(1 for _, to in scrapes if to)
        target = "" if name == "idle" else ("met" if max(lat) <= TARGET_MAX_S and not timeouts else "MISSED")
        row = (
            f"| {label} | {name} | {len(lat)} | {statistics.median(lat) * 1e3:.0f} ms | {max(lat) * 1e3:.0f} ms "
            f"| {timeouts} | {note} | {target} |"
        )
        print(row, flush=True)
        rows.append(row)
    return rows


def baseline_tree(rev: str, dest: Path) -> Path:
    tar = dest / "base.tar"
    with tar.open("wb") as f:
        subprocess.run(["git", "-C", str(REPO), "archive", rev, "edgeq"], stdout=f, check=True)  # noqa: S603, S607
    with tarfile.open(tar) as t:
        t.extractall(dest / "tree", filter="data")
    return dest / "tree"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", metavar="REV", help="also measure this git revision first (e.g. the commit before a change)")
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to bench/RESULTS.md")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db, log = root / "h.db", root / "serve.log"
        cpu = build_history(db)
        print(
            f"history: {RUNS} runs x {len(DEVICES)} boards x 4 variants x 2 threads x 2000 samples; "
            f"one report render: {cpu:.2f} s CPU (in-process)"
        )
        env = {k: v for k, v in os.environ.items() if k not in ("EDGEQ_DEVICES", "EDGEQ_HISTORY_DB")}
        env["EDGEQ_HOME"] = str(root / "home")
        header = [
            "| code | scenario | scrapes | p50 | max | timed out (10 s) | beside the scrapes | max <= 1 s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        print("\n".join(header), flush=True)
        rows = []
        if a.baseline:
            tree = baseline_tree(a.baseline, root)
            rows += run_all(f"baseline {a.baseline}", db, {**env, "PYTHONPATH": str(tree)}, log)
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
        rows += run_all(f"this tree ({head.strip()})", db, env, log)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    body = (
        f"History: {RUNS} runs of one pipeline, each {len(DEVICES)} boards x 4 variants x 2 thread counts x 2000 "
        f"samples; one report render costs {cpu:.2f} s of CPU (in-process). Each scenario: a fresh `edgeq metrics serve` "
        "(default bounds), sequential /metrics scrapes 0.1 s apart; a scrape without an answer in 10 s counts as 10 s.\n\n"
        f"- load average at the end: {load} (the machine is shared)\n\n" + "\n".join(header + rows)
    )
    if not a.no_record:
        argv = " ".join(["python bench/metrics_serve_bench.py", *sys.argv[1:]])
        append_results("edgeq metrics serve: /metrics under report and slow-client load", argv, body)


if __name__ == "__main__":
    main()
