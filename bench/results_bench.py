"""Issue [4 of 5] numbers: a history of 10,000 stored benchmark results, then exporter scrape, history and compare times.

Run:  python bench/results_bench.py [--runs 1250] [--samples 2000]
Each synthetic run is a realistic manifest (4 variants x 2 boards x 1 thread = 8 benchmark results with raw latency
samples, 4 validate results) recorded through edgeq.results.record_run, spread over 5 pipelines.
Targets: scrape <= 100 ms (median of 20 GETs against a real `edgeq metrics serve` process), compare <= 1 s.
Writes a dated section to bench/RESULTS.md and prints the same table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from edgeq.results import load_manifest, record_run  # noqa: E402
from edgeq.testing.promfarm import free_port, synthetic_manifest  # noqa: E402

VARIANTS = ("fp32", "int8", "dynamic", "float16")
DEVICES = ("pi5", "pi4")
PIPELINES = ("quickstart", "fashion-mnist-mlp", "fashion-mnist-cnn", "kws-cnn", "person-detect")


def fill(db: Path, runs: int, samples: int) -> tuple[float, int]:
    t0 = dt.datetime(2023, 1, 1, 2, 30, tzinfo=dt.UTC)
    results = 0
    start = time.perf_counter()
    for i in range(runs):
        pipeline = PIPELINES[i % len(PIPELINES)]
        when = t0 + dt.timedelta(hours=6 * i)  # several pipelines a night, for ~3.5 years
        drift = 1.0 + 0.02 * ((i // len(PIPELINES)) % 7)
        m = synthetic_manifest(
            f"{when:%Y%m%dT%H%M%SZ}-{i:06x}",
            pipeline=pipeline,
            started=when.isoformat(),
            devices=DEVICES,
            variants=VARIANTS,
            n=samples,
            seed=i,
            p50_s={
                (d, v): base * drift * (2.0 if d == "pi4" else 1.0)
                for d in DEVICES
                for v, base in zip(VARIANTS, (1e-3, 0.45e-3, 0.8e-3, 0.9e-3), strict=False)
            },
        )
        record_run(load_manifest(m), db)
        results += len(m["benchmarks"])
    return time.perf_counter() - start, results


def timed(args: list[str], env: dict, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "edgeq", *args], capture_output=True, text=True, env=env, cwd=REPO)
        times.append(time.perf_counter() - t)
        if p.returncode not in (0, 9):
            sys.exit(f"edgeq {' '.join(args)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return statistics.median(times)


def scrape_times(db: Path, env: dict, n: int = 20) -> tuple[float, float, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeq", "metrics", "serve", "--port", str(port), "--db", str(db)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        proc.stderr.readline()  # "serving http://..."
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - loopback; warm-up
            body = r.read()
        times = []
        for _ in range(n):
            t = time.perf_counter()
            with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - loopback
                r.read()
            times.append(time.perf_counter() - t)
        return statistics.median(times), max(times), len(body)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1250)
    ap.add_argument("--samples", type=int, default=2000, help="raw latency samples per benchmark result")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "history.db"
        env = {**os.environ, "EDGEQ_HOME": tmp, "EDGEQ_HISTORY_DB": str(db)}
        fill_s, results = fill(db, a.runs, a.samples)
        size_mb = sum(p.stat().st_size for p in Path(tmp).glob("history.db*")) / 1e6
        scrape_med, scrape_max, body = scrape_times(db, env)
        hist = timed(["history"], env, 7)
        hist_json = timed(["history", "--limit", "100", "--json"], env, 5)
        cmp_ = timed(["compare"], env, 7)
        cmp_json = timed(["compare", "--pipeline", "quickstart", "--json"], env, 5)
        rep = timed(["report", "latest", "-o", str(Path(tmp) / "r.html")], env, 3)
        helps = timed(["--help"], env, 7)
    rows = [
        (
            "stored benchmark results",
            f"{results:,} ({a.runs:,} runs x 8, {a.samples:,} raw samples each; +{a.runs * 4:,} validate results)",
        ),
        ("history.db size", f"{size_mb:.0f} MB"),
        (
            "record_run per run (8 results + samples, one transaction; incl. building the synthetic manifest)",
            f"{fill_s / a.runs * 1e3:.1f} ms",
        ),
        (
            "exporter scrape, median of 20 (max)",
            f"{scrape_med * 1e3:.1f} ms ({scrape_max * 1e3:.1f} ms), {body / 1e3:.0f} kB exposition — target <= 100 ms",
        ),
        ("`edgeq history` wall (median of 7)", f"{hist:.3f} s"),
        ("`edgeq history --limit 100 --json` wall (median of 5)", f"{hist_json:.3f} s"),
        ("`edgeq compare` wall, latest vs previous (median of 7)", f"{cmp_:.3f} s — target <= 1 s"),
        ("`edgeq compare --pipeline quickstart --json` (median of 5)", f"{cmp_json:.3f} s"),
        ("`edgeq report latest` (matplotlib, 3 plots; median of 3)", f"{rep:.3f} s"),
        ("`edgeq --help` wall (median of 7)", f"{helps:.3f} s"),
    ]
    body_md = "| measure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    print(body_md)
    ok = scrape_med <= 0.1 and cmp_ <= 1.0
    print("targets met" if ok else "TARGET MISSED")
    append_results(
        "Results history, export, compare (issue 4 of 5)",
        f"python bench/results_bench.py --runs {a.runs} --samples {a.samples}",
        body_md,
    )


if __name__ == "__main__":
    main()
