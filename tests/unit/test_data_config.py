"""Unit tests of pure logic: idx parsing, preprocessing, config line mapping and env substitution."""

from __future__ import annotations

import numpy as np
import pytest

from edgeq import config
from edgeq.config import DataSpec
from edgeq.data import datasets as data
from edgeq.errors import ConfigError, DataError


def test_read_idx_roundtrip_and_bad_magic(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    f = tmp_path / "a-idx3-ubyte"
    f.write_bytes(bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + (4).to_bytes(4, "big") + arr.tobytes())
    np.testing.assert_array_equal(data.read_idx(f), arr)
    f.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match="bad magic"):
        data.read_idx(f)


def test_npz_source_and_preprocessing(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        x_train=rng.normal(5, 2, (100, 4)),
        y_train=rng.integers(0, 3, 100),
        x_test=rng.normal(5, 2, (20, 4)),
        y_test=rng.integers(0, 3, 20),
    )
    ds = data.load(DataSpec(source="npz", path="d.npz", preprocess="standardize", validation_split=0.2), tmp_path, 0)
    assert ds.x_train.shape == (80, 4) and ds.x_val.shape == (20, 4) and ds.num_classes == 3
    assert abs(float(ds.x_train.mean())) < 0.1  # standardized with training statistics
    assert ds.norm["kind"] == "standardize"
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((3, 2)))
    with pytest.raises(DataError, match="missing arrays"):
        data.load(DataSpec(source="npz", path="bad.npz"), tmp_path, 0)


def test_sklearn_digits_is_deterministic():
    a = data.load(DataSpec(), __import__("pathlib").Path("."), 7)
    b = data.load(DataSpec(), __import__("pathlib").Path("."), 7)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.x_train.max() <= 1.0 and a.input_shape == (8, 8, 1)


def test_env_substitution_only_edgeq_vars(tmp_path, monkeypatch):
    f = tmp_path / "d.yaml"
    f.write_text("a:\n  host: ${EDGEQ_TEST_HOST}\n  b: ${HOME}\n")
    monkeypatch.setenv("EDGEQ_TEST_HOST", "pi.local")
    with pytest.raises(ConfigError, match=r"d.yaml:3: a.b: \$\{HOME\} is not allowed"):
        config.read_yaml(f, substitute_env=True)
    f.write_text("a:\n  host: ${EDGEQ_TEST_HOST}\n")
    data_, _ = config.read_yaml(f, substitute_env=True)
    assert data_ == {"a": {"host": "pi.local"}}
    monkeypatch.delenv("EDGEQ_TEST_HOST")
    with pytest.raises(ConfigError, match="EDGEQ_TEST_HOST is not set"):
        config.read_yaml(f, substitute_env=True)


def test_line_numbers_for_nested_list_items(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(
        "name: x\nmodel: {builtin: mlp}\nquantize:\n  variants:\n    - type: fp32\n    - type: int8\n"
        "      calibration_samples: -1\n"
    )
    with pytest.raises(ConfigError) as e:
        config.load(config.PipelineSpec, f)
    assert f"{f}:7: quantize.variants[1].calibration_samples" in e.value.message
