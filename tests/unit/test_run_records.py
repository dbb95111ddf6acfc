"""edgeq.records.run reads the manifests edgeq writes and gives back the same documents."""

import json
from pathlib import Path

import pytest

from edgeq.records import RecordError
from edgeq.records.run import RunManifest, VariantResult

DATA = Path(__file__).resolve().parents[1] / "data"


def test_real_manifest_round_trips_to_the_same_text():
    doc = json.loads((DATA / "manifest-v0.1.json").read_text())
    m = RunManifest.from_json(doc)
    out = m.to_json()
    assert out == doc
    # same key order too, but for the boards inside deploy results: edgeq.records.fleet.BoardOutcome's order
    for d in (out, doc):
        d["stages"]["deploy"]["results"] = None
    assert json.dumps(out, indent=2) == json.dumps(doc, indent=2)
    assert m.variants["int8"].gates.passed and m.variants["int8"].size_ratio == 0.4444
    assert m.stages.validate_["int8"].layer_errors.worst[0].op == "FULLY_CONNECTED"
    assert m.stages.train.from_run is None and m.stages.deploy.results["int8"].devices[0].status == "changed"
    assert m.benchmarks[1].latency_ms.p50 == 0.002605 and m.benchmarks == m.stages.benchmark.results


def _partial_doc() -> dict:
    return {
        "run_id": "r1",
        "pipeline": "p",
        "pipeline_file": "/x/p.yaml",
        "pipeline_sha256": "0" * 64,
        "status": "running",
        "started": "2026-01-01T00:00:00+00:00",
        "pid": 123,
        "params": {"name": "p"},
        "versions": {"edgeq": "0.1.0", "keras": None},
        "inputs": {},
        "stages": {
            "train": {"key": "k", "cached": True, "skipped": "SavedModel input", "output": "/m"},
            "quantize": {
                "tpu": {
                    "key": "q",
                    "cached": True,
                    "output": "/q/model.tflite",
                    "variant": "tpu",
                    "type": "edgetpu",
                    "size_bytes": 10,
                    "cpu_model_bytes": 9,
                    "eval_file": "cpu.tflite",
                    "convert_seconds": 1,
                    "calibration_samples": 5,
                    "edgetpu": {"compiler": "16"},
                    "seconds": 1.5,
                    "from_run": "r0",
                },
                "q8": {
                    "key": "q2",
                    "cached": False,
                    "output": "/q2/model.tflite",
                    "variant": "q8",
                    "type": "int8",
                    "qat": True,
                    "size_bytes": 10,
                    "calibration_samples": 0,
                    "qat_total_seconds": 3.0,
                    "qat_epochs": 2,
                    "qat_learning_rate": 1e-05,
                    "qat_seconds": 2.5,
                    "seconds": 3.1,
                },
            },
        },
        "variants": {
            "q8": {"type": "int8", "qat": True, "artifact": "/a", "sha256": "1" * 64, "size_bytes": 10},
        },
    }


def test_optional_keys_are_written_exactly_when_given():
    doc = _partial_doc()
    m = RunManifest.from_json(doc)
    assert m.to_json() == doc
    assert json.dumps(m.to_json()) == json.dumps(doc)  # in the same order
    newer = {**doc, "stages": {**doc["stages"], "quantize": {"x": {**doc["stages"]["quantize"]["q8"], "later": 1}}}}
    assert RunManifest.from_stored(newer).to_json()["stages"]["quantize"]["x"]["later"] == 1  # unknown keys kept
    with pytest.raises(RecordError) as e:  # outside the stored-document boundary an unknown key is a mistake
        RunManifest.from_json(newer)
    assert e.value.field == "stages.quantize.x.later"
    done = m.replace(status="failed", error="boom", pid=None).to_json()
    assert done["status"] == "failed" and done["error"] == "boom" and done["pid"] is None
    assert "finished" not in done and "gates_failed" not in done


def test_replace_keeps_the_keys_a_record_had():
    v = VariantResult(type="fp32", artifact="/a", sha256="s", size_bytes=1)
    assert v.to_json() == {"type": "fp32", "artifact": "/a", "sha256": "s", "size_bytes": 1}
    w = v.replace(accuracy=0.5, test_samples=2)
    assert w.to_json() == {**v.to_json(), "accuracy": 0.5, "test_samples": 2}


def test_a_bad_field_is_named():
    doc = _partial_doc()
    doc["variants"]["q8"]["size_bytes"] = "big"
    with pytest.raises(RecordError) as e:
        RunManifest.from_json(doc)
    assert e.value.field == "variants.q8.size_bytes"
