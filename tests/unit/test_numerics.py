"""edgeq.results.tracediff: op-by-op comparison of traces (pure logic, hand-made traces)."""

from __future__ import annotations

import base64

import numpy as np

from edgeq.records.numeric import TraceOp, TraceTensor
from edgeq.results import tracediff as numerics


def _op(index: int, tensor: int, arr: np.ndarray, op: str = "FULLY_CONNECTED") -> TraceOp:
    t = TraceTensor(
        tensor=tensor, name=f"t{tensor}", dtype=arr.dtype.name, shape=arr.shape, data=base64.b64encode(arr.tobytes()).decode()
    )
    return TraceOp(index=index, op=op, outputs=(t,))


def test_quantized_error_in_steps_and_first_over_tolerance():
    a = np.array([[1, 2, 3]], dtype=np.int8)
    host = [_op(0, 5, a), _op(1, 6, a), _op(2, 7, a)]
    board = [_op(0, 5, a + 1), _op(1, 6, a + 3), _op(2, 7, a - 9)]  # one step is tolerated
    errs = numerics.compare_traces(host, board)
    assert [e.error for e in errs] == [1.0, 3.0, 9.0] and [e.unit for e in errs] == ["lsb"] * 3
    assert numerics.first_divergent(errs).op_index == 1 and numerics.worst(errs).op_index == 2


def test_int8_extremes_do_not_wrap():
    host = [_op(0, 1, np.array([127], dtype=np.int8))]
    board = [_op(0, 1, np.array([-128], dtype=np.int8))]
    assert numerics.compare_traces(host, board)[0].error == 255.0


def test_float_error_is_relative_to_the_host_range():
    h = np.array([[10.0, -20.0]], dtype=np.float32)
    errs = numerics.compare_traces([_op(0, 1, h)], [_op(0, 1, h + np.float32(0.01))])
    assert errs[0].unit == "rel" and abs(errs[0].error - 0.0005) < 1e-6 and not errs[0].exceeds
    errs = numerics.compare_traces([_op(0, 1, h)], [_op(0, 1, h * 1.01)])
    assert errs[0].exceeds


def test_missing_or_reshaped_tensor_is_a_mismatch():
    h = np.zeros((1, 3), dtype=np.int8)
    errs = numerics.compare_traces([_op(0, 1, h), _op(1, 2, h)], [_op(0, 1, h.reshape(3, 1)), _op(1, 9, h)])
    assert [e.unit for e in errs] == ["mismatch", "mismatch"] and all(e.exceeds for e in errs)
    assert numerics.worst(errs).op_index == 0


def test_nan_on_both_sides_agrees():
    h = np.array([np.nan, 1.0], dtype=np.float32)
    (e,) = numerics.compare_traces([_op(0, 1, h)], [_op(0, 1, h.copy())])
    assert not e.exceeds and e.error == 0.0
