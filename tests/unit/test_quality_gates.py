"""Quantization quality (issue 6): per-layer error analysis, mixed precision to an accuracy budget,
calibration selection and histogram calibration. Real TensorFlow, real mlir_quantize, real interpreter.

The crafted model is pipelines/outlier_model.py (the bench hard case) on scikit-learn's digits: two
channels of its penultimate activation are 500x the others, which wrecks per-tensor int8 activations.
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------- pure logic


def test_class_balanced_picks_balanced_labels():
    from edgeq.stages.quantize import calibration_indices

    rng = np.random.default_rng(0)
    y = rng.choice(10, size=2000, p=[0.5] + [0.5 / 9] * 9)  # class 0 is half the data
    idx = calibration_indices(y, len(y), 100, seed=3, selection="class_balanced")
    assert len(idx) == 100 and len(set(idx.tolist())) == 100
    counts = np.bincount(y[idx], minlength=10)
    assert counts.tolist() == [10] * 10
    rand = calibration_indices(y, len(y), 100, seed=3, selection="random")
    assert np.bincount(y[rand], minlength=10)[0] > 30  # random follows the skew: the balancing is real
    # deterministic for a seed, different for another
    assert np.array_equal(idx, calibration_indices(y, len(y), 100, seed=3, selection="class_balanced"))
    assert not np.array_equal(idx, calibration_indices(y, len(y), 100, seed=4, selection="class_balanced"))


def test_class_balanced_gives_a_short_class_share_to_the_others():
    from edgeq.stages.quantize import calibration_indices

    y = np.array([0] * 3 + [1] * 50 + [2] * 50)
    idx = calibration_indices(y, len(y), 30, seed=0, selection="class_balanced")
    counts = np.bincount(y[idx], minlength=3)
    assert counts[0] == 3 and counts.sum() == 30 and abs(int(counts[1]) - int(counts[2])) <= 1


def test_first_and_random_selection():
    from edgeq.stages.quantize import calibration_indices, calibration_set

    assert calibration_indices(None, 50, 10, seed=0, selection="first").tolist() == list(range(10))
    r = calibration_indices(None, 50, 10, seed=0, selection="random")
    assert len(set(r.tolist())) == 10 and r.tolist() != list(range(10))
    x = np.arange(50, dtype=np.float32)[:, None]
    assert calibration_set(x, 500, 0, "first").shape == (50, 1)  # asks for more than there is: all rows


def test_unmet_budget_is_a_gate_failure_naming_the_layers_tried():
    from edgeq.config import GatesSpec
    from edgeq.records.run import VariantResult
    from edgeq.stages.validate import check_gates

    mp = {"met": False, "budget": 0.005, "val_drop": 0.012, "tried": ["dense_1", "conv2d"]}
    r = VariantResult.from_json(
        {"type": "int8", "artifact": "/a", "sha256": "0", "size_bytes": 10, "accuracy": 0.9, "mixed_precision": mp}
    )
    failed = check_gates("int8-mixed", r, GatesSpec(), False)
    assert len(failed) == 1 and "accuracy_budget 0.50 points not met" in failed[0] and "dense_1, conv2d" in failed[0]
    assert check_gates("int8-mixed", r.replace(mixed_precision={**mp, "met": True}), GatesSpec(), False) == []
