"""How tests/data/history-main.db and its golden documents were made (with the code of main at 76acc05).

Run from the repository root: PYTHONPATH=$PWD python3 tests/data/build_history_main.py
The database holds a real run's manifest (tests/data/manifest-v0.1.json: its raw sample files are gone,
as after a pruned run folder), two synthetic nightly runs of one pipeline (a regression, a failed board,
quantization-quality notes, foreign text that must be escaped) and a failed run of another pipeline.
The golden files are what `edgeq history/compare --json`, the metrics exposition and the report's HTML
(images and the timestamp left out) showed for it; tests/test_results_compat.py checks they stay so.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DB = HERE / "history-main.db"
sys.path.insert(0, str(REPO))


def manifests() -> list[dict]:
    from edgeq.testing.promfarm import synthetic_manifest

    real = json.loads((HERE / "manifest-v0.1.json").read_text())
    for b in real["benchmarks"]:  # the run folder was pruned: the summary stays, the raw samples are gone
        b["raw"] = b["raw"].replace("/tmp/fresh/", "/nonexistent/fresh/")
    r1 = synthetic_manifest("20260101T023000Z-111111", n=40, seed=1, threads=(1, 2))
    r2 = synthetic_manifest(
        "20260102T023000Z-222222",
        started="2026-01-02T02:30:00+00:00",
        n=40,
        seed=2,
        threads=(1, 2),
        devices=("pi5", "pi4", "pi3"),
        failed_devices=("pi3",),
        status="fleet_failed",
        p50_s={("pi5", "int8"): 0.7e-3},
        accuracy={"int8": 0.93},
        peak_rss={("pi4", "int8"): 90_000_000},
    )
    v = r2["variants"]["int8"]
    v["qat"] = True
    v["mixed_precision"] = {
        "met": False,
        "budget": 0.005,
        "int8_op_fraction": 0.75,
        "float_layers": [{"layer": "dense_<2>", "op": "FULLY_CONNECTED", "tensor": "t"}],
        "size_ratio_vs_plain": 1.3,
        "latency_ratio_vs_plain": 1.1,
    }
    v["layer_errors"] = {
        "samples": 10,
        "worst": [
            {
                "op": "CONV_2D",
                "layer": "conv<1>",
                "tensor": "t",
                "scale": 0.1,
                "zero_point": 0,
                "rmse_scale": 0.9,
                "max_abs_error": 0.2,
            }
        ],
    }
    v["gates"] = {"passed": False, "failed": ["accuracy_drop 0.0200 > 0.0100"]}
    r2["params"]["quantize"]["variants"][1]["gates"] = {"max_accuracy_drop": 0.01}
    r2["gates_failed"] = ["int8: accuracy_drop 0.0200 > 0.0100"]
    r2["benchmarks"][0]["board"]["board_model"] = "Pi <b>5</b> & 'co'"  # board text is data
    failed = {
        "run_id": "20260103T023000Z-333333",
        "pipeline": "other",
        "pipeline_file": "/srv/pipelines/other.yaml",
        "pipeline_sha256": "b" * 64,
        "status": "failed",
        "started": "2026-01-03T02:30:00+00:00",
        "finished": "2026-01-03T02:31:00+00:00",
        "wall_seconds": 60.0,
        "params": {},
        "versions": {"edgeq": "0.1.0", "python": "3.11.7"},
        "inputs": {},
        "stages": {},
        "variants": {},
        "error": "train failed: <script>alert(1)</script> & more",
        "gates_failed": [],
    }
    return [real, r1, r2, failed]


def main() -> None:
    from edgeq import metrics
    from edgeq.report.html import render_html
    from edgeq.results import load_manifest, query, record_run
    from edgeq.results.compare import compare

    for p in HERE.glob("history-main.db*"):
        p.unlink()
    for m in manifests():
        record_run(load_manifest(m), DB)
    c = sqlite3.connect(str(DB))
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.execute("VACUUM")
    c.close()

    def cli(*args: str) -> dict:
        env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(HERE)}
        out = subprocess.run(
            [sys.executable, "-m", "edgeq", *args, "--db", str(DB), "--json"], capture_output=True, text=True, env=env
        )
        doc = json.loads(out.stdout)
        doc.pop("db", None)
        return doc

    golden = {
        "history": cli("history", "--limit", "50"),
        "compare_latest_synth": cli("compare", "--pipeline", "synth"),
        "compare_named": cli("compare", "20260102T023000Z-222222", "20260101T023000Z-111111"),
    }
    with query.open_for_reading(DB) as h:
        runs = [query.load(h, query.resolve(h, r), samples=True) for r in sorted(x["run_id"] for x in golden["history"]["runs"])]
        golden["loaded_with_samples"] = runs
        synth = [r for r in runs if r["pipeline"] == "synth"]
        html = render_html(synth[1], query.trend(h, "synth", synth[1]["started_ts"], 10), compare(synth[0], synth[1]))
        html_real = render_html(runs[-1], [], None)
        html_failed = render_html(next(r for r in runs if r["status"] == "failed"), [], None)
    golden["exposition"] = metrics.exposition(metrics.registry_for(metrics.latest_families(DB))).decode()
    golden["report_html"] = normalize_html(html)
    golden["report_html_real"] = normalize_html(html_real)
    golden["report_html_failed"] = normalize_html(html_failed)
    (HERE / "history-main.golden.json").write_text(json.dumps(golden, indent=1, sort_keys=False) + "\n")
    for p in HERE.glob("history-main.db-*"):
        p.unlink()


def normalize_html(html: str) -> str:
    """The plots (matplotlib's bytes vary by version) and the time of writing are left out."""
    html = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,PNG", html)
    return re.sub(r"written by edgeq at [^<]*", "written by edgeq at TIME", html)


if __name__ == "__main__":
    main()
