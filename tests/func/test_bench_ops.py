"""`edgeq bench --ops` and `edgeq compare --ops` on the local board: the real agent in a subprocess, the real LiteRT
CompiledModel profiler, small conv models built here by TensorFlow, the real history database."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A 3-conv net (32x32x3 -> conv 8 -> conv 16 -> conv 16 -> mean -> dense), and the same net (same seed) with
    the last conv's filters doubled (16 -> 32): that conv, model op 2, does twice the work."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    layers = tf.keras.layers

    def build(filters: int) -> bytes:
        tf.keras.utils.set_random_seed(0)
        m = tf.keras.Sequential(
            [
                tf.keras.Input((32, 32, 3), batch_size=1),
                layers.Conv2D(8, 3, activation="relu"),
                layers.Conv2D(16, 3, activation="relu"),
                layers.Conv2D(filters, 3, activation="relu"),
                layers.GlobalAveragePooling2D(),
                layers.Dense(10),
            ]
        )
        return tf.lite.TFLiteConverter.from_keras_model(m).convert()

    d = tmp_path_factory.mktemp("opsmodels")
    (d / "conv.tflite").write_bytes(build(16))
    (d / "conv2x.tflite").write_bytes(build(32))
    return d


def _bench(edgeq, model, db, *extra, env=None):
    return edgeq(
        "bench",
        model,
        "--name",
        "conv",
        "-t",
        "local",
        "--ops",
        "--runs",
        "60",
        "--min-seconds",
        "0.1",
        "--db",
        db,
        *extra,
        env=env,
    )


def test_bench_ops_prints_rows_stores_them_and_compare_names_the_doubled_conv(edgeq, models, tmp_path):
    db = tmp_path / "h.db"
    table = _bench(edgeq, models / "conv.tflite", db, "--sessions", "2", env={"COLUMNS": "80"})
    assert table.code == 0, table.stderr
    assert "ops: conv on local (1 thread), 2 session(s)" in table.stdout
    assert "Convolution" in table.stdout and "CONV_2D" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    assert "coverage" in table.stderr and "Interpreter p50" in table.stderr

    runs = {}
    for m in ("conv", "conv2x"):
        r = _bench(edgeq, models / f"{m}.tflite", db, "--sessions", "3", "--json")
        assert r.code == 0, r.stderr
        doc = r.json()
        (p,) = doc["ops"]["profiles"]
        assert p["kind"] == "ok" and p["sessions"] == 3 and p["runtime"].startswith("litert-compiled")
        assert 0.3 < p["coverage"] <= 1.2, p["coverage"]
        assert p["invoke"]["p50_us"] > 0 and p["unprofiled"]["p50_us"] > 0 and p["interpreter_p50_us"] > 0
        assert len(p["fingerprint"]) == 16 and set(p["kernels"]) == {o["node"] for o in p["ops"]}
        convs = [o for o in p["ops"] if o["op"] == "Convolution"]
        assert len(convs) == 3 and all(len(o["sessions"]) == 3 for o in convs)
        runs[m] = doc["history_run"]

    c = sqlite3.connect(db)
    stored = c.execute("SELECT run_id, kind, sessions FROM op_profiles ORDER BY id").fetchall()
    assert [(k, s) for _, k, s in stored] == [("ok", 2), ("ok", 3), ("ok", 3)]
    assert c.execute("SELECT count(*) FROM op_profile_ops WHERE op = 'Convolution'").fetchone()[0] == 9
    assert c.execute("SELECT count(*) FROM kernel_fingerprints").fetchone()[0] == 1  # same kernels in all three

    cmp = edgeq("compare", "--ops", runs["conv"], runs["conv2x"], "--db", db, "--json")
    assert cmp.code == 0, cmp.stderr
    (d,) = cmp.json()["diffs"]
    flagged = [o for o in d["ops"] if o["flagged"]]
    assert [o["model_op"] for o in flagged] == ["2 CONV_2D"], d["ops"]
    assert flagged[0]["ratio"] > 1.2 and flagged[0]["ci_low"] > 1.0 and flagged[0]["share"] > 0.3
    assert d["kernel_changes"] == [] and not d["only_base"] and not d["only_cand"]
    text = edgeq("compare", "--ops", runs["conv"], runs["conv2x"], "--db", db)
    assert text.code == 0 and "flagged" in text.stdout and "2 CONV_2D" in text.stderr


def test_a_board_on_the_tensorflow_runtime_reports_unsupported_with_exit_0(edgeq, models, tmp_path):
    db = tmp_path / "h.db"
    r = _bench(edgeq, models / "conv.tflite", db, "--sessions", "2", "--json", env={"EDGEQ_AGENT_RUNTIME": "tensorflow"})
    assert r.code == 0, r.stderr
    (p,) = r.json()["ops"]["profiles"]
    assert p["kind"] == "unsupported" and "no profiler hook" in p["reason"] and "ai-edge-litert" in p["fix"]
    assert p["ops"] == [] and p["coverage"] is None
    assert sqlite3.connect(db).execute("SELECT kind FROM op_profiles").fetchall() == [("unsupported",)]


def test_a_pipeline_benchmark_stage_with_ops_keeps_the_profiles_for_the_history(models, tmp_path):
    from edgeq import fleet
    from edgeq.config import BenchmarkStageSpec
    from edgeq.pipeline.fleet import benchmark_stage
    from edgeq.records.ops import OpsReport
    from edgeq.records.run import VariantResult
    from edgeq.results import query
    from edgeq.results.opstore import load_profiles, record_run_profiles
    from edgeq.results.record import load_manifest, record_run
    from edgeq.testing.promfarm import synthetic_manifest

    p = models / "conv.tflite"
    variants = {"fp32": VariantResult(type="fp32", artifact=str(p), sha256="0" * 64, size_bytes=p.stat().st_size)}
    spec = BenchmarkStageSpec(targets=["local"], runs=20, warmup=1, min_seconds=0.0, inputs="random", sessions=2, ops=True)
    run = tmp_path / "run"
    benchmark_stage(spec, ["local"], fleet.load_inventory(None), variants, run, None, lambda s: None, lambda s: None)
    (prof,) = OpsReport.from_stored(json.loads((run / "bench" / "ops.json").read_text())).profiles
    assert prof.kind == "ok" and prof.variant == "fp32" and prof.sessions == 2
    db = tmp_path / "h.db"
    record_run(load_manifest(synthetic_manifest("r1")), db)
    assert record_run_profiles("r1", run, db) == 1
    with query.open_for_reading(db) as h:
        assert [x.variant for x in load_profiles(h, "r1")] == ["fp32"]
