"""Time `edgeq metrics backfill` over a year of nightly runs: history read, OpenMetrics, promtool create-blocks.

Usage: python bench/backfill_bench.py [--runs 365]. Appends a section to bench/RESULTS.md (machine and load
included: the machine may be shared). Runs are synthetic (edgeq.testing.promfarm.synthetic_manifest: 2 boards x
2 variants, 400 raw samples each) recorded into a real SQLite history, one a day.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

from _common import append_results

from edgeq.metrics.backfill import backfill
from edgeq.results import load_manifest, record_run
from edgeq.testing.promfarm import synthetic_manifest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=365)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = root / "history.db"
        start = dt.datetime(2026, 1, 1, 2, 30, tzinfo=dt.UTC)
        t = time.perf_counter()
        for i in range(args.runs):
            when = (start + dt.timedelta(days=i)).isoformat()
            record_run(load_manifest(synthetic_manifest(f"r{i:04d}", started=when, seed=i)), db)
        recorded = time.perf_counter() - t
        t = time.perf_counter()
        res = backfill(db_path=db, out=root / "edgeq.om.txt", data_dir=root / "data")
        wall = time.perf_counter() - t
        om_bytes = (root / "edgeq.om.txt").stat().st_size
        blocks = sum(1 for p in (root / "data").iterdir() if p.is_dir())
        data_bytes = sum(p.stat().st_size for p in (root / "data").rglob("*") if p.is_file())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = Path("/proc/loadavg").read_text().split()[:3]
    body = (
        f"| runs | series | samples | backfill wall | OpenMetrics | blocks | TSDB size | peak RSS (this process) |\n"
        f"|---|---|---|---|---|---|---|---|\n"
        f"| {res.runs} | {res.series} | {res.samples} | {wall:.1f} s | {om_bytes / 1e6:.1f} MB | {blocks} | "
        f"{data_bytes / 1e6:.1f} MB | {rss:.0f} MB |\n\n"
        f"- recording the {args.runs} runs first took {recorded:.1f} s (not part of the backfill)\n"
        f"- load average at the end: {' '.join(load)} (the machine is shared with other jobs)\n"
    )
    print(body)
    append_results("metrics backfill of a year of nightlies", f"python bench/backfill_bench.py --runs {args.runs}", body)


if __name__ == "__main__":
    main()
