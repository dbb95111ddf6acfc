"""Pipeline runs that end with deploy + benchmark on the embedded local board (real agent subprocess)."""

from __future__ import annotations

import numpy as np


def test_accuracy_check_tolerance_logic():
    """Pure logic: within tolerance passes (XNNPACK vs reference kernels), beyond it fails with both numbers."""
    from edgeq.pipeline.fleet import compare_accuracy

    y = np.arange(10_000) % 10
    preds = y.copy()
    preds[0] = 9  # one answer of 10,000 differs
    acc, delta, err = compare_accuracy(preds, y, host=1.0, tol=0.001)
    assert acc == 0.9999 and round(delta, 6) == -0.0001 and err is None
    preds[:100] = 9
    acc, delta, err = compare_accuracy(preds, y, host=1.0, tol=0.001)
    assert err and "0.9910" in err and "1.0000" in err and "-0.90 pts" in err
    assert compare_accuracy(preds[:5], y, 1.0, 0.001)[2] == "5 predictions for 10000 inputs"
