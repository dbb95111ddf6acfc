"""`edgeq bench` results reach the history as ad hoc runs (local board: real agent, real TFLite, real SQLite):
history shows and filters them, compare uses them only when asked, exports and pipeline baselines never see them."""

from __future__ import annotations

import base64

from edgeq.fleet.setup.scripts import TINY_MODEL_B64
from edgeq.results import load_manifest, open_for_reading, query, record_run
from edgeq.testing.promfarm import synthetic_manifest


def test_bench_is_stored_as_an_ad_hoc_run(edgeq, tmp_path):
    model = tmp_path / "tiny.tflite"
    model.write_bytes(base64.b64decode(TINY_MODEL_B64))
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("nightly-1", started="2026-01-01T02:30:00+00:00", devices=("pi5",))), db)
    bench = ("bench", model, "-t", "local", "--runs", "10", "--min-seconds", "0.05", "--sessions", "1", "--db", db)
    r = edgeq(*bench, "--json")
    assert r.code == 0, r.stderr
    first = r.json()["history_run"]
    r = edgeq(*bench, "-q")
    assert r.code == 0 and "p50" in r.stdout and r.stderr == "", r.stderr  # -q: the table, no "stored as" line

    with open_for_reading(db) as h:
        run = query.load(h, query.resolve(h, first), samples=True)
        assert query.resolve(h, "latest").run_id == "nightly-1"  # `latest` means the latest pipeline run
        assert [x.pipeline for x in query.latest_per_pipeline(h)] == ["synth"]  # no ad hoc run in the exports
    assert run.adhoc is True and run.pipeline == "tiny" and run.status == "ok"
    (b,) = run.benchmarks
    assert (b.device, b.variant, b.threads, b.ok) == ("local", "tiny", b.threads, True)
    stride = b.samples_stride or 1  # the agent keeps every n-th sample of a long run
    assert b.count >= 10 and abs(len(b.samples_s) * stride - b.count) < stride and 0 < b.p50_s < 1

    r = edgeq("history", "--db", db, "--json")
    docs = {d["run_id"]: d for d in r.json()["runs"]}
    assert len(docs) == 3 and docs[first]["adhoc"] is True and "adhoc" not in docs["nightly-1"]
    r = edgeq("history", "--db", db, "--adhoc")
    assert r.code == 0 and "(ad hoc)" in r.stdout and "nightly-1" not in r.stdout, r.stdout
    r = edgeq("history", "--db", db, "--no-adhoc", "--json")
    assert [d["run_id"] for d in r.json()["runs"]] == ["nightly-1"]

    # compare: by default the latest pipeline run, which has no earlier run: nothing to compare (exit 0)
    r = edgeq("compare", "--db", db, "--json")
    assert r.code == 0 and r.json()["compared"] is False, r.stdout
    r = edgeq("compare", "--db", db, "--adhoc", "--json")  # asked: the two benches of tiny
    assert r.code == 0 and r.json()["base"]["run_id"] == first, r.stdout
