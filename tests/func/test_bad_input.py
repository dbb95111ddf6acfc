"""Every bad input gets a clear error (what, where, what to do), its documented exit code, no traceback,
and leaves nothing half-written."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from edgeq.testing.common import assert_clean_error

CONFIG, DATA, MODEL = 3, 4, 5


def _no_runs(home):
    assert not (home / "runs").exists(), "a config error must write nothing"


def test_unknown_key_names_file_line_and_path(edgeq, write_pipeline, home):
    p = write_pipeline("name: t\nmodel:\n  builtin: mlp\n  hiden: [3]\n")
    r = edgeq("run", p)
    assert_clean_error(r, CONFIG, f"{p}:4: model.hiden: unknown key")
    _no_runs(home)


def test_missing_key(edgeq, write_pipeline, home):
    r = edgeq("run", write_pipeline("name: t\ndata:\n  source: sklearn-digits\n"))
    assert_clean_error(r, CONFIG, "model: required key is missing")
    _no_runs(home)


def test_wrong_type_points_at_the_value(edgeq, write_pipeline, home):
    p = write_pipeline("name: t\nmodel: {builtin: mlp}\ntrain:\n  epochs: many\n")
    r = edgeq("run", p)
    assert_clean_error(r, CONFIG, f"{p}:4: train.epochs", "integer")
    r = edgeq("run", write_pipeline("name: t\nmodel: {builtin: mlp}\nquantize:\n  variants:\n    - type: int4\n"))
    assert_clean_error(r, CONFIG, "quantize.variants[0].type", "'fp32'")
    _no_runs(home)


def test_yaml_syntax_error(edgeq, write_pipeline, home):
    p = write_pipeline("name: t\nmodel:\n  builtin: [mlp\n")
    r = edgeq("run", p, "--json")
    assert_clean_error(r, CONFIG, "YAML syntax error")
    assert r.json()["exit_code"] == CONFIG and r.json()["ok"] is False
    _no_runs(home)


def test_missing_pipeline_file(edgeq, tmp_path):
    assert_clean_error(edgeq("run", tmp_path / "nope.yaml"), CONFIG, "nope.yaml: file not found")


def test_dataset_path_missing(edgeq, write_pipeline):
    r = edgeq("run", write_pipeline({"data": {"source": "idx", "path": "/nonexistent/fmnist"}}))
    assert_clean_error(r, DATA, "dataset file not found: /nonexistent/fmnist/train-images-idx3-ubyte.gz")


def _idx(path, arr, dtype_code=0x08, gz=True):
    raw = bytes([0, 0, dtype_code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()
    (gzip.open if gz else open)(path, "wb").write(raw)


def _idx_set(d, n_train=300, n_test=100, gz=True, n_test_labels=None):
    rng = np.random.default_rng(0)
    ext = ".gz" if gz else ""
    _idx(d / f"train-images-idx3-ubyte{ext}", rng.integers(0, 255, (n_train, 6, 6), dtype=np.uint8), gz=gz)
    _idx(d / f"train-labels-idx1-ubyte{ext}", rng.integers(0, 3, n_train, dtype=np.uint8), gz=gz)
    _idx(d / f"t10k-images-idx3-ubyte{ext}", rng.integers(0, 255, (n_test, 6, 6), dtype=np.uint8), gz=gz)
    _idx(d / f"t10k-labels-idx1-ubyte{ext}", rng.integers(0, 3, n_test_labels or n_test, dtype=np.uint8), gz=gz)


def test_truncated_idx(edgeq, write_pipeline, tmp_path):
    d = tmp_path / "ds"
    d.mkdir()
    _idx_set(d)
    f = d / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(f.read_bytes())
    f.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    r = edgeq("run", write_pipeline({"data": {"source": "idx", "path": "ds"}}))
    assert_clean_error(r, DATA, "truncated idx file", "train-images-idx3-ubyte.gz")
    # a gzip stream cut short (not just short data) is reported the same way
    f.write_bytes(f.read_bytes()[:40])
    assert_clean_error(edgeq("run", write_pipeline({"data": {"source": "idx", "path": "ds"}})), DATA, "train-images")


def test_image_label_count_mismatch(edgeq, write_pipeline, tmp_path):
    d = tmp_path / "ds"
    d.mkdir()
    _idx_set(d, n_test=100, n_test_labels=90)
    r = edgeq("run", write_pipeline({"data": {"source": "idx", "path": "ds"}}))
    assert_clean_error(r, DATA, "has 100 images but t10k-labels-idx1-ubyte.gz has 90 labels")


def test_factory_import_failure(edgeq, write_pipeline, tmp_path):
    (tmp_path / "broken.py").write_text("import no_such_module_xyz\n")
    r = edgeq("run", write_pipeline({"model": {"factory": "broken:build"}}))
    assert_clean_error(r, MODEL, "cannot import 'broken'", "no_such_module_xyz")
    r = edgeq("run", write_pipeline({"model": {"factory": "absent_mod:build"}}))
    assert_clean_error(r, MODEL, "module 'absent_mod' not found")
    r = edgeq("run", write_pipeline({"model": {"factory": "not a factory"}}))
    assert_clean_error(r, CONFIG, "model.factory", "package.module:function")


def test_two_model_sources_is_a_config_error(edgeq, write_pipeline):
    r = edgeq("run", write_pipeline({"model": {"builtin": "mlp", "path": "x.keras"}}))
    assert_clean_error(r, CONFIG, "exactly one of model.builtin, model.path, model.factory")


def test_drop_gate_without_baseline(edgeq, write_pipeline, home):
    r = edgeq(
        "run", write_pipeline({"quantize": {"variants": [{"type": "int8"}]}, "validate": {"gates": {"max_accuracy_drop": 0.01}}})
    )
    assert_clean_error(r, CONFIG, "needs an fp32 variant")
    _no_runs(home)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_source_gz_and_plain_and_npz(edgeq, write_pipeline, tmp_path, gz):
    d = tmp_path / "ds"
    d.mkdir()
    _idx_set(d, gz=gz)
    names = (
        {}
        if gz
        else {
            k: v
            for k, v in (
                ("train_images", "train-images-idx3-ubyte"),
                ("train_labels", "train-labels-idx1-ubyte"),
                ("test_images", "t10k-images-idx3-ubyte"),
                ("test_labels", "t10k-labels-idx1-ubyte"),
            )
        }
    )
    r = edgeq(
        "run",
        write_pipeline({"data": {"source": "idx", "path": "ds", "preprocess": "standardize", **names}, "train": {"epochs": 1}}),
        "--json",
    )
    assert r.code == 0, r.stderr
    assert r.json()["variants"]["fp32"]["test_samples"] == 100


def test_repeated_bench_threads_is_a_usage_error(edgeq, tmp_path):
    """`--threads 2 --threads 2` would measure and export one series twice: refused before any board is touched."""
    r = edgeq("bench", tmp_path / "m.tflite", "--threads", "2", "--threads", "4", "--threads", "2")
    assert r.code == 2 and "2 is given twice" in r.stderr and "Traceback" not in r.stderr, r.stderr
